"""The relay: how a CLI in a sandbox reaches the gateway without ever holding its key.

An HTTP/1.1 server (h11 over asyncio) on a unix socket. Each request must carry a session's
relay token (`Authorization: Bearer` or Anthropic's `x-api-key`); `authorize` maps it to a
grant or refuses it. The relay then swaps in the gateway's real key, forwards the request to
the gateway (chat completions, Responses, Anthropic Messages, models: LiteLLM serves all),
streams the answer back as it comes, and hands the usage it saw (the usage chunk or event;
LiteLLM's cost header or usage cost) to `account`, which charges the session's turn.

The store is not imported here: `authorize` and `account` are injected (engine/relay_service.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import h11

log = logging.getLogger(__name__)

ALLOWED = {("POST", "/v1/chat/completions"), ("POST", "/v1/responses"), ("POST", "/v1/messages"),
           ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")}
_FORWARD_HEADERS = {b"content-type", b"accept", b"anthropic-version", b"anthropic-beta", b"openai-beta",
                    b"user-agent"}
_BACK_HEADERS = {b"content-type", b"x-litellm-response-cost", b"retry-after", b"request-id", b"x-request-id"}
MAX_BODY = 32 * 2**20
MAX_SCAN_LINE = 2**20


@dataclass(frozen=True)
class Grant:
    session_id: str
    turn_id: str | None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, obj: Any) -> None:
        """Take usage from one chat chunk, Responses event or Messages event (the largest
        figure wins: Messages repeats cumulative counts)."""
        if not isinstance(obj, dict):
            return
        for u in (obj.get("usage"), _get(obj, "response", "usage"), _get(obj, "message", "usage")):
            if not isinstance(u, dict):
                continue
            p = _num(u.get("prompt_tokens")) or _num(u.get("input_tokens"))
            c = _num(u.get("completion_tokens")) or _num(u.get("output_tokens"))
            self.prompt_tokens = max(self.prompt_tokens, int(p))
            self.completion_tokens = max(self.completion_tokens, int(c))
            if _num(u.get("cost")):
                self.cost_usd = max(self.cost_usd, _num(u.get("cost")))

    @property
    def empty(self) -> bool:
        return not (self.prompt_tokens or self.completion_tokens or self.cost_usd)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _get(obj: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else 0.0


class _SseScanner:
    """Finds usage in a streamed body without holding it: one line at a time."""

    def __init__(self, usage: Usage) -> None:
        self.usage, self.buf = usage, b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    try:
                        self.usage.add(json.loads(payload))
                    except ValueError:
                        pass
        if len(self.buf) > MAX_SCAN_LINE:
            self.buf = b""


class Relay:
    def __init__(self, upstream: str, key: str, *, authorize: Callable[[str], Awaitable[Grant | None]],
                 account: Callable[[Grant, Usage], Awaitable[None]], timeout: float = 600.0) -> None:
        import httpx

        base = upstream.rstrip("/")
        self.upstream = base[:-3] if base.endswith("/v1") else base
        self._key = key
        self._authorize = authorize
        self._account = account
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self.requests = 0  # served (for the idle check)
        self.active = 0

    def __repr__(self) -> str:
        return f"Relay(upstream={self.upstream!r}, key=****)"

    async def serve_unix(self, path: str) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._connection, path=path)

    async def serve_tcp(self, host: str, port: int) -> asyncio.AbstractServer:
        """For sandboxes that reach lap-tui over a network (Kubernetes pods); the token is the check."""
        return await asyncio.start_server(self._connection, host=host, port=port)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        self.active += 1
        try:
            while True:
                req = await self._next_request(conn, reader, writer)
                if req is None:
                    return
                method, target, headers, body = req
                await self._serve(conn, writer, method, target, headers, body)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            log.debug("relay connection ended: %s", exc)
        finally:
            self.active -= 1
            writer.close()

    async def _next_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> tuple[str, str, dict[bytes, bytes], bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._send_json(conn, writer, 413, "the request body is too large")
                    return None
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                headers = {k.lower(): v for k, v in request.headers}
                return request.method.decode(), request.target.decode("latin-1"), headers, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _serve(self, conn: h11.Connection, writer: asyncio.StreamWriter, method: str, target: str,
                     headers: dict[bytes, bytes], body: bytes) -> None:
        self.requests += 1
        path = target.split("?", 1)[0]
        token = _token(headers)
        grant = await self._authorize(hash_token(token)) if token else None
        if grant is None:
            await self._send_json(conn, writer, 401, "the lap-tui relay token is missing, unknown or revoked")
            return
        if (method, path) not in ALLOWED:
            await self._send_json(conn, writer, 404, f"the lap-tui relay does not forward {method} {path}")
            return
        out_headers = {k.decode(): v.decode("latin-1") for k, v in headers.items() if k in _FORWARD_HEADERS}
        out_headers["authorization"] = f"Bearer {self._key}"
        if b"x-api-key" in headers:
            out_headers["x-api-key"] = self._key
        out_headers["accept-encoding"] = "identity"  # the usage scan reads the body as sent
        import httpx

        usage = Usage()
        try:
            req = self._client.build_request(method, self.upstream + target, headers=out_headers,
                                             content=body if method == "POST" else None)
            resp = await self._client.send(req, stream=True)
        except httpx.HTTPError as exc:
            await self._send_json(conn, writer, 502, f"the gateway could not be reached: {type(exc).__name__}")
            return
        try:
            back = [(k, v) for k, v in resp.headers.raw if k.lower() in _BACK_HEADERS]
            cost = resp.headers.get("x-litellm-response-cost")
            streamed = "text/event-stream" in resp.headers.get("content-type", "")
            writer.write(conn.send(h11.Response(status_code=resp.status_code, headers=back)))
            scanner = _SseScanner(usage) if streamed else None
            whole = bytearray()
            async for chunk in resp.aiter_raw():
                if scanner is not None:
                    scanner.feed(chunk)
                elif len(whole) < MAX_BODY:
                    whole += chunk
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()
            if scanner is None and resp.status_code == 200:
                try:
                    usage.add(json.loads(bytes(whole)))
                except ValueError:
                    pass
            try:
                if cost and float(cost) > 0:
                    usage.cost_usd = max(usage.cost_usd, float(cost))
            except ValueError:
                pass
            # Charged before the answer ends: a CLI that exits right after it finds its turn's
            # totals already there.
            await self._charge(grant, usage)
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        finally:
            await resp.aclose()
            await self._charge(grant, usage)  # a broken stream still used tokens

    async def _charge(self, grant: Grant, usage: Usage) -> None:
        if usage.empty:
            return
        figures = Usage(usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
        usage.prompt_tokens = usage.completion_tokens = 0
        usage.cost_usd = 0.0  # charged once
        try:
            await self._account(grant, figures)
        except Exception as exc:  # never break the CLI's stream for our bookkeeping
            log.warning("relay could not charge usage to session %s: %s", grant.session_id, exc)

    async def _send_json(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "lap_relay_error", "code": status}}).encode()
        writer.write(conn.send(h11.Response(status_code=status, headers=[
            ("content-type", "application/json"), ("content-length", str(len(body)))])))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()


def _token(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get(b"x-api-key", b"").decode("latin-1").strip()
