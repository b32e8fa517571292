"""The relay: how a CLI in a sandbox reaches the gateway without ever holding its key.

An HTTP/1.1 server (h11 over asyncio) on a unix socket. Each request must carry a session's
relay token (`Authorization: Bearer` or Anthropic's `x-api-key`); `authorize` maps it to a
grant or refuses it. The relay then swaps in the gateway's real key, forwards the request to
the gateway (chat completions, Responses, Anthropic Messages, models: LiteLLM serves all),
streams the answer back as it comes, and hands the usage it saw (the usage chunk or event;
LiteLLM's cost header or usage cost) to `account`, which charges the session's turn.

With a grant that asks for a virtual key (an agent with `gateway_key = "virtual"`), the relay
forwards with a LiteLLM virtual key of that session instead of the gateway's key: derived from
the gateway's key and the session id (so nothing needs storing), minted through the gateway's
`POST /key/generate` on the session's first request through this relay (the gateway's key as
admin; `max_budget`, `duration`, `metadata`, `key_alias`), its budget brought up to date with
`/key/update` when the key already exists. LiteLLM then enforces the budget per session; a
"budget exceeded" answer reaches the CLI as a plain 400 that says so.

`GET /healthz` is the one path answered without a token (the Deployment's probes): 200
`{"status": "ok"}` when the injected `healthy` check passes (the store answers), else 503; with
`?live` only the event loop is checked. It says nothing else (no settings, no token, no key).

Stopping (`stop_accepting`, then `drain`): the listeners close and idle keep-alive connections
are closed (new connections are refused, /healthz answers 503), the requests under way finish
and are charged; what still runs after the grace period is cancelled (its usage so far charged).

The store is not imported here: `authorize`, `account` and `healthy` are injected (engine/relay_service.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
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
HEALTH_PATH = "/healthz"
HEALTH_TIMEOUT = 3.0  # below the probes' timeoutSeconds


@dataclass(frozen=True)
class VirtualKeySpec:
    """What the session's LiteLLM virtual key is minted with."""

    budget_usd: float = 0.0  # 0: no max_budget
    ttl: str = ""  # LiteLLM duration ("7d"); "": never expires
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Grant:
    session_id: str
    turn_id: str | None
    virtual: VirtualKeySpec | None = None  # None: forward with the gateway's own key


class VirtualKeyError(Exception):
    """The gateway would not mint (or delete) a virtual key; the message names why, no key in it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def virtual_key(master_key: str, session_id: str) -> str:
    """The session's virtual key: an HMAC of the session id under the gateway's key, so the relay
    (and a deletion later) finds the same key again with nothing stored. LiteLLM wants `sk-`."""
    mac = hmac.new(master_key.encode(), b"lap-tui virtual key\0" + session_id.encode(), hashlib.sha256)
    return "sk-lap-" + mac.hexdigest()


def key_alias(key: str, session_id: str) -> str:
    """Unique per key (LiteLLM refuses a reused alias): a changed gateway key gives a new alias."""
    return f"lap-tui-{session_id}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _error_text(body: bytes, *secrets: str) -> str:
    """One line of what the gateway said, with the keys masked."""
    try:
        obj = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
    else:
        err = obj.get("error", obj.get("detail", obj)) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            err = err.get("message", err.get("error", err))
        text = err if isinstance(err, str) else json.dumps(err)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return " ".join(text.split())[:300]


def _exists(status: int, text: str) -> bool:
    low = text.lower()
    return status in (400, 409, 500) and ("already exists" in low or "unique constraint" in low)


def budget_refusal(status: int, body: bytes) -> str | None:
    """LiteLLM's "budget exceeded" answer (400 in older releases, 429 in newer; `type`
    budget_exceeded, or an ExceededBudget message): its message, else None."""
    if status not in (400, 429):
        return None
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(err, dict):
        return None
    message = str(err.get("message", ""))
    if err.get("type") == "budget_exceeded" or "ExceededBudget" in message or "Budget has been exceeded" in message:
        # Key=<hash of the key> says nothing to the user; dropped.
        return " ".join(re.sub(r"\bKey=\S+\s*", "", message).split())[:300] or "budget exceeded"
    return None


class VirtualKeys:
    """Minting and deleting sessions' LiteLLM virtual keys with the gateway's key as admin."""

    def __init__(self, client: Any, upstream: str, master_key: str) -> None:
        self._client, self.upstream, self._master = client, upstream, master_key
        self._minted: dict[str, VirtualKeySpec] = {}  # session -> what its key was last set to here
        self._lock = asyncio.Lock()

    def key_for(self, session_id: str) -> str:
        return virtual_key(self._master, session_id)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        import httpx

        try:
            resp = await self._client.post(self.upstream + path, json=body,
                                           headers={"authorization": f"Bearer {self._master}"})
        except httpx.HTTPError as exc:
            raise VirtualKeyError(f"the gateway could not be reached for {path}: {type(exc).__name__}") from None
        return resp.status_code, resp.content

    async def ensure(self, grant: Grant) -> str:
        """The session's key, minted (or its budget updated) once per spec in this relay."""
        spec = grant.virtual
        assert spec is not None
        key = self.key_for(grant.session_id)
        if self._minted.get(grant.session_id) == spec:
            return key
        async with self._lock:
            if self._minted.get(grant.session_id) == spec:
                return key
            body: dict[str, Any] = {"key": key, "key_alias": key_alias(key, grant.session_id),
                                    "metadata": {"lap_tui_session": grant.session_id, **spec.metadata}}
            if spec.budget_usd:
                body["max_budget"] = spec.budget_usd
            if spec.ttl:
                body["duration"] = spec.ttl
            status, raw = await self._post("/key/generate", body)
            text = _error_text(raw, key, self._master)
            if status == 200:
                log.info("relay minted the virtual key %s for session %s", body["key_alias"], grant.session_id)
            elif _exists(status, text):
                # Minted before (another relay process, an earlier turn): bring its budget up to date.
                status, raw = await self._post("/key/update", {"key": key, "max_budget": spec.budget_usd or None})
                if status != 200:
                    raise VirtualKeyError("the gateway would not update the session's virtual key "
                                          f"(HTTP {status}): {_error_text(raw, key, self._master)}", status)
            else:
                raise VirtualKeyError(f"the gateway would not mint a virtual key for the session (HTTP {status}): "
                                      f"{text}", status)
            if len(self._minted) > 10000:
                self._minted.clear()
            self._minted[grant.session_id] = spec
            return key

    async def delete(self, session_ids: list[str]) -> list[str]:
        """Delete the sessions' keys; the ids whose key the gateway did not delete (one log line
        each, never the key). A key that was never minted counts as deleted."""
        failed = []
        for sid in session_ids:
            key = self.key_for(sid)
            self._minted.pop(sid, None)
            try:
                status, raw = await self._post("/key/delete", {"keys": [key]})
            except VirtualKeyError as exc:
                status, text = 0, str(exc)
            else:
                text = _error_text(raw, key, self._master)
            low = text.lower()
            if status == 200 or (status in (400, 404) and ("not found" in low or "not all keys" in low)):
                continue
            failed.append(sid)
            log.warning("could not delete the LiteLLM virtual key %s of session %s (HTTP %s): %s",
                        key_alias(key, sid), sid, status, text)
        return failed


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
                 account: Callable[[Grant, Usage], Awaitable[None]], timeout: float = 600.0,
                 healthy: Callable[[], Awaitable[bool]] | None = None) -> None:
        import httpx

        base = upstream.rstrip("/")
        self.upstream = base[:-3] if base.endswith("/v1") else base
        self._key = key
        self._authorize = authorize
        self._account = account
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self.virtual_keys = VirtualKeys(self._client, self.upstream, key)
        self._healthy = healthy
        self.requests = 0  # served (for the idle check; /healthz not counted)
        self.draining = False
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.StreamWriter] = set()  # connections waiting for their next request

    def __repr__(self) -> str:
        return f"Relay(upstream={self.upstream!r}, key=****)"

    async def serve_unix(self, path: str) -> asyncio.AbstractServer:
        server = await asyncio.start_unix_server(self._connection, path=path)
        self._servers.append(server)
        return server

    async def serve_tcp(self, host: str, port: int) -> asyncio.AbstractServer:
        """For sandboxes that reach lap-tui over a network (Kubernetes pods); the token is the check."""
        server = await asyncio.start_server(self._connection, host=host, port=port)
        self._servers.append(server)
        return server

    @property
    def active(self) -> int:
        """Connections open now (the idle check)."""
        return len(self._connections)

    def stop_accepting(self) -> None:
        """No new connection, no new request: the listeners close, idle keep-alive connections too
        (their client opens a new one, to another replica), /healthz answers 503."""
        self.draining = True
        for server in self._servers:
            server.close()
        for writer in list(self._idle):
            writer.close()

    async def drain(self, grace: float) -> int:
        """Let the requests under way finish (and be charged) for up to `grace` seconds; then
        cancel the rest (each charges what it saw). The number cut short."""
        self.stop_accepting()
        running = set(self._connections)
        if not running:
            return 0
        log.info("relay stopping: %d connection(s) under way, grace %g s", len(running), grace)
        _, pending = await asyncio.wait(running, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("relay grace period over: cut %d stream(s) short", len(pending))
            await asyncio.wait(pending)
        return len(pending)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        task = asyncio.current_task()
        if self.draining or task is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            while True:
                req = await self._next_request(conn, reader, writer)
                if req is None:
                    return
                method, target, headers, body = req
                await self._serve(conn, writer, method, target, headers, body)
                if self.draining:
                    return  # answered in full; the client's next request goes elsewhere
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            log.debug("relay connection ended: %s", exc)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _next_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> tuple[str, str, dict[bytes, bytes], bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                idle = conn.their_state is h11.IDLE and not conn.trailing_data[0]
                if idle and self.draining:
                    return None
                if idle:
                    self._idle.add(writer)
                try:
                    data = await reader.read(65536)
                finally:
                    self._idle.discard(writer)
                if writer.is_closing():  # closed by stop_accepting while it waited
                    return None
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
        path, _, query = target.partition("?")
        if method == "GET" and path == HEALTH_PATH:
            await self._health(conn, writer, live_only=query == "live")
            return
        self.requests += 1
        token = _token(headers)
        grant = await self._authorize(hash_token(token)) if token else None
        if grant is None:
            await self._send_json(conn, writer, 401, "the lap-tui relay token is missing, unknown or revoked")
            return
        if (method, path) not in ALLOWED:
            await self._send_json(conn, writer, 404, f"the lap-tui relay does not forward {method} {path}")
            return
        upstream_key = self._key
        if grant.virtual is not None:
            try:
                upstream_key = await self.virtual_keys.ensure(grant)
            except VirtualKeyError as exc:
                # 400, not 5xx: the CLIs would retry a 502 for minutes; this needs the operator.
                await self._send_json(conn, writer, 400 if exc.status else 502,
                                      f"lap-tui relay: {exc} (docs/HARNESSES.md: virtual keys need LiteLLM "
                                      "with a database and the gateway's master key)")
                return
        out_headers = {k.decode(): v.decode("latin-1") for k, v in headers.items() if k in _FORWARD_HEADERS}
        out_headers["authorization"] = f"Bearer {upstream_key}"
        if b"x-api-key" in headers:
            out_headers["x-api-key"] = upstream_key
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
            if resp.status_code in (400, 401, 429) and not streamed:
                raw = await resp.aread()
                refused = self._refusal(grant, resp.status_code, raw, upstream_key)
                if refused is not None:
                    # A plain 400 the CLI shows and gives up on (a 429 it would retry for minutes, a
                    # 401 might send it to a login).
                    await self._send_json(conn, writer, 400, refused[0], type_=refused[1])
                    return
                writer.write(conn.send(h11.Response(status_code=resp.status_code, headers=back)))
                writer.write(conn.send(h11.Data(data=raw)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                return
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

    def _refusal(self, grant: Grant, status: int, raw: bytes, upstream_key: str) -> tuple[str, str] | None:
        """What to tell the CLI when the gateway refused for budget (or, for a virtual key, expiry)."""
        spec = grant.virtual
        agent = spec.metadata.get("lap_tui_agent", "AGENT") if spec is not None else ""
        refused = budget_refusal(status, raw)
        if refused is not None:
            if spec is None:
                return (f"budget exceeded: the gateway's key has used up its budget; the gateway said: {refused}",
                        "budget_exceeded")
            budget = f" (max ${spec.budget_usd:g})" if spec.budget_usd else ""
            return (f"budget exceeded: this session's LiteLLM virtual key has used up its budget{budget}; the "
                    f"gateway said: {refused}. Raise it with `lap-tui agents edit {agent} --key-budget USD` "
                    "(from the next turn)", "budget_exceeded")
        text = _error_text(raw, upstream_key, self._key)
        if spec is not None and status == 401 and "expired" in text.lower():
            return (f"this session's LiteLLM virtual key has expired (key TTL {spec.ttl or 'none'}): start a new "
                    f"session, or give the agent a longer one (`lap-tui agents edit {agent} --key-ttl 30d`); "
                    f"the gateway said: {text}", "expired_key")
        return None

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

    async def _health(self, conn: h11.Connection, writer: asyncio.StreamWriter, *, live_only: bool) -> None:
        """200 only when this relay can serve; the body says "ok", "draining" or "unavailable"."""
        if self.draining:
            status, state = 503, "draining"
        elif live_only or self._healthy is None:
            status, state = 200, "ok"
        else:
            try:
                ok = await asyncio.wait_for(self._healthy(), HEALTH_TIMEOUT)
            except Exception as exc:  # the reason goes to the log only (it may name the store's host)
                log.warning("relay health check failed: %s", type(exc).__name__)
                ok = False
            status, state = (200, "ok") if ok else (503, "unavailable")
        body = json.dumps({"status": state}).encode()
        writer.write(conn.send(h11.Response(status_code=status, headers=[
            ("content-type", "application/json"), ("content-length", str(len(body))),
            ("cache-control", "no-store")])))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _send_json(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str,
                         *, type_: str = "lap_relay_error") -> None:
        body = json.dumps({"error": {"message": message, "type": type_, "code": status}}).encode()
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
