"""Async client for a LiteLLM gateway (the OpenAI-compatible API): models and streamed chat.

httpx is imported when a client is constructed, never when this module is
imported, so the TUI's first paint does not pay for them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from lap_tui.config import mask_url_password
from lap_tui.domain.secrets import MASK, Redactor
from lap_tui.gateway.errors import (
    BASE_HINT,
    KEY_HINT,
    GatewayAuthError,
    GatewayError,
    GatewayProtocolError,
    GatewayRejected,
    GatewayUnavailable,
    ModelNotFound,
    StreamInterrupted,
)
from lap_tui.gateway.sse import IdleWatchdog, paced, sse_data
from lap_tui.gateway.retry import RetryPolicy, Timeouts, is_retryable_status, parse_retry_after
from lap_tui.gateway.types import Completion, RetryNotice, StreamEvent, TextDelta, ToolCall, ToolCallDelta, Usage

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from lap_tui.config import Settings

log = logging.getLogger(__name__)

OnRetry = Callable[[RetryNotice], "Awaitable[None] | None"]
COST_HEADER = "x-litellm-response-cost"
_DETAIL_MAX = 300
_MODEL_MISSING = re.compile(r"invalid model|model\b.*\bnot (found|exist|served)|no such model|not a valid model|"
                            r"model_not_found", re.I)
_RESERVED_PARAMS = frozenset({"model", "messages", "stream", "tools"})


@dataclass(eq=False)  # exceptions stay hashable
class _Transient(Exception):
    """A failure worth another try (if nothing was yielded yet)."""

    reason: str  # short, for on_retry and StreamInterrupted: "429 Too Many Requests", "connection dropped"
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""
    timeout: bool = False


@dataclass
class _Acc:
    """Assembles a streamed response: text, index-keyed tool calls, usage, cost."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    last_index: int = -1
    finish_reason: str | None = None
    usage: Usage | None = None
    usage_cost: float | None = None
    model: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage.from_dict(usage)
            cost = _float(usage.get("cost"))
            if cost is not None:
                self.usage_cost = cost
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                continue  # n > 1 is not supported: only the first choice counts
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                out.append(TextDelta(content))
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    out.append(self._tool_delta(tc))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _tool_delta(self, tc: dict[str, Any]) -> ToolCallDelta:
        fn = tc.get("function") or {}
        tc_id = tc.get("id") or None
        idx = tc.get("index")
        if not isinstance(idx, int):  # some providers omit it: a new id opens a new call
            if tc_id and tc_id not in self.ids:
                idx = max(self.calls, default=-1) + 1
            else:
                idx = self.ids.get(tc_id, self.last_index) if tc_id else max(self.last_index, 0)
        self.last_index = idx
        call = self.calls.setdefault(idx, {"id": None, "name": None, "args": []})
        if tc_id and not call["id"]:
            call["id"] = tc_id
            self.ids[tc_id] = idx
        name = fn.get("name")
        if name and not call["name"]:
            call["name"] = name
        frag = fn.get("arguments") or ""
        if not isinstance(frag, str):
            frag = json.dumps(frag)
        if frag:
            call["args"].append(frag)
        return ToolCallDelta(index=idx, id=call["id"], name=call["name"], arguments_fragment=frag)

    def tool_calls(self) -> list[ToolCall]:
        out = []
        for idx in sorted(self.calls):
            c = self.calls[idx]
            out.append(ToolCall(id=c["id"] or f"call_{idx}_{uuid.uuid4().hex[:12]}", name=c["name"] or "",
                                arguments="".join(c["args"])))
        return out

    @property
    def partial_text(self) -> str:
        return "".join(self.text)


class GatewayClient:
    """One gateway, one connection pool. Use as `async with GatewayClient(...) as gw:`."""

    def __init__(self, base_url: str, api_key: str = "", *, timeouts: Timeouts | None = None,
                 retry: RetryPolicy | None = None, on_retry: OnRetry | None = None,
                 headers: Mapping[str, str] | None = None, transport: "httpx.AsyncBaseTransport | None" = None,
                 clock: Callable[[], float] = time.time) -> None:
        import httpx  # lazy: see the module docstring

        self._clock = clock  # wall clock, for a Retry-After given as an HTTP date (tests pin it)

        self.base_url = _api_root(base_url)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        key = (api_key or "").strip()
        self._has_key = bool(key)
        self._redact = Redactor([key, api_key or ""])
        hdrs = {"User-Agent": "lap-tui", **(headers or {})}
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        t = self.timeouts
        # Reads are bounded by first_byte / idle deadlines of our own (asyncio), not per socket read.
        self._http = httpx.AsyncClient(
            headers=hdrs, transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.connect),
        )

    @classmethod
    def from_settings(cls, settings: "Settings", **kwargs: Any) -> "GatewayClient":
        return cls(settings["litellm_api_base"], settings["litellm_api_key"], **kwargs)

    def __repr__(self) -> str:
        return (f"GatewayClient(base_url={mask_url_password(self.base_url)!r}, "
                f"api_key={MASK if self._has_key else ''!r})")

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- models -------------------------------------------------------------------------

    async def list_models(self, *, on_retry: OnRetry | None = None) -> list[str]:
        """The model names the gateway serves for this key (`GET /v1/models`), in its order."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._list_models_once()
            except _Transient as t:
                await self._before_retry(attempt, t, on_retry)

    async def _list_models_once(self) -> list[str]:
        import httpx

        url = self.base_url + "/models"
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                resp = await self._http.get(url, headers={"Accept": "application/json"})
        except TimeoutError:
            raise _Transient(f"no answer within {self.timeouts.first_byte:g} s", timeout=True) from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc) from None
        if resp.status_code != 200:
            if resp.status_code == 404:
                raise GatewayRejected(f"there is no OpenAI-compatible API at {self._shown_url(url)} (HTTP 404)",
                                      BASE_HINT + " (the URL of the gateway, with or without /v1)", status=404)
            self._raise_status(resp.status_code, resp.reason_phrase, resp.content, resp.headers, what="list models")
        data = self._json(resp.content, url)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise GatewayProtocolError(f"{self._shown_url(url)} answered without a model list",
                                       "is LITELLM_API_BASE an OpenAI-compatible gateway?")
        return [str(m["id"]) for m in items if isinstance(m, dict) and m.get("id")]

    # ---- chat ---------------------------------------------------------------------------

    async def stream_chat(self, model: str, messages: Sequence[Mapping[str, Any]],
                          tools: Sequence[Mapping[str, Any]] | None = None, *,
                          on_retry: OnRetry | None = None, **params: Any) -> AsyncIterator[StreamEvent]:
        """Stream one chat completion: TextDelta / ToolCallDelta events, then one Completion.

        Retries transient failures only while nothing has been yielded; a failure after that
        raises StreamInterrupted carrying what arrived. `params` go into the request body
        as they are (temperature, tool_choice, max_tokens, ...).
        """
        clash = _RESERVED_PARAMS & params.keys()
        if clash:
            raise ValueError(f"stream_chat: {sorted(clash)} cannot be passed as extra params")
        body: dict[str, Any] = {"model": model, "messages": list(messages), **params, "stream": True}
        opts = dict(body.get("stream_options") or {})
        opts.setdefault("include_usage", True)
        body["stream_options"] = opts
        if tools:
            body["tools"] = list(tools)
        attempt = 0
        while True:
            attempt += 1
            acc = _Acc()
            yielded = False
            try:
                async with aclosing(self._stream_once(model, body, acc)) as events:
                    async for event in events:
                        if not isinstance(event, Completion):
                            yielded = True
                        yield event
                return
            except _Transient as t:
                if yielded:
                    raise StreamInterrupted(t.reason, partial_text=acc.partial_text,
                                            partial_tool_calls=acc.tool_calls(), cause=t.detail) from None
                await self._before_retry(attempt, t, on_retry)

    async def _stream_once(self, model: str, body: dict[str, Any], acc: _Acc) -> AsyncIterator[StreamEvent]:
        import httpx

        url = self.base_url + "/chat/completions"
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + self.timeouts.first_byte
        request = self._http.build_request("POST", url, json=body, headers={"Accept": "text/event-stream"})
        try:
            async with asyncio.timeout_at(first_deadline):
                resp = await self._http.send(request, stream=True)
        except TimeoutError:
            raise _Transient(f"no answer within {self.timeouts.first_byte:g} s", timeout=True) from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc) from None
        try:
            if resp.status_code != 200:
                try:
                    async with asyncio.timeout(self.timeouts.idle):
                        content = await resp.aread()
                except (TimeoutError, httpx.TransportError):
                    content = b""
                await self._raise_chat_status(model, resp.status_code, resp.reason_phrase, content, resp.headers)
            header_cost = _float(resp.headers.get(COST_HEADER))
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                # A gateway that ignored stream=true: accept a whole chat.completion body.
                async with asyncio.timeout_at(first_deadline):
                    content = await resp.aread()
                for ev in acc.feed(self._json(content, url)):
                    yield ev
                yield self._completion(acc, header_cost)
                return
            events = sse_data(paced(resp.aiter_bytes()))
            dog, done, got_any = IdleWatchdog(), False, False
            try:
                while True:
                    # The idle clock starts when the wait does: the consumer's time never counts.
                    dog.arm(loop.time() + self.timeouts.idle if got_any else first_deadline)
                    try:
                        data = await anext(events)
                    except StopAsyncIteration:
                        break
                    except asyncio.CancelledError:
                        if not dog.expired():
                            raise
                        if got_any:
                            raise _Transient(f"no data for {self.timeouts.idle:g} s (idle timeout)",
                                             timeout=True) from None
                        raise _Transient(f"no answer within {self.timeouts.first_byte:g} s", timeout=True) from None
                    except httpx.TransportError as exc:
                        raise _Transient("connection dropped", detail=self._describe(exc)) from None
                    finally:
                        dog.disarm()
                    got_any = True
                    data = data.strip()
                    if not data:
                        continue
                    if data == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        text = self._clip(data.decode("utf-8", "replace"))
                        raise GatewayProtocolError(f"the gateway sent a stream event that is not JSON: {text}",
                                                   "is LITELLM_API_BASE an OpenAI-compatible gateway?") from None
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):
                        self._raise_in_stream_error(chunk["error"])
                    for ev in acc.feed(chunk):
                        yield ev
            finally:
                dog.close()
                await events.aclose()
            if not done and acc.finish_reason is None:
                raise _Transient("the stream ended before [DONE]")
            yield self._completion(acc, header_cost)
        finally:
            await resp.aclose()

    @staticmethod
    def _completion(acc: _Acc, header_cost: float | None) -> Completion:
        cost = acc.usage_cost if acc.usage_cost is not None else header_cost
        return Completion(text=acc.partial_text, tool_calls=acc.tool_calls(), finish_reason=acc.finish_reason,
                          usage=acc.usage, cost_usd=cost, model=acc.model)

    # ---- errors and retries ---------------------------------------------------------------

    async def _before_retry(self, attempt: int, t: _Transient, on_retry: OnRetry | None) -> None:
        """Sleep before the next attempt, or raise GatewayUnavailable when we should stop."""
        policy = self.retry
        if t.retry_after is not None and t.retry_after > policy.max_retry_after:
            raise GatewayUnavailable(
                f"the gateway asked to wait {t.retry_after:.0f} s before retrying ({t.reason})",
                f"that is more than the {policy.max_retry_after:g} s this client waits; try again later",
                status=t.status, attempts=attempt)
        if attempt >= policy.max_attempts:
            raise self._exhausted(t, attempt)
        delay = policy.delay(attempt, t.retry_after)
        notice = RetryNotice(attempt=attempt, max_attempts=policy.max_attempts, delay_s=delay, reason=t.reason,
                             status=t.status, retry_after_s=t.retry_after)
        log.info("gateway: %s", notice)
        callback = on_retry or self.on_retry
        if callback is not None:
            try:
                result = callback(notice)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a UI callback must not break the call
                log.exception("gateway: on_retry callback failed")
        await asyncio.sleep(delay)

    def _exhausted(self, t: _Transient, attempts: int) -> GatewayUnavailable:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if t.status == 429:
            return GatewayUnavailable(f"the gateway is rate limiting requests (HTTP 429, {tries})",
                                      "wait a little and retry, or raise the key's rate limits in LiteLLM",
                                      status=429, attempts=attempts)
        if t.status is not None:
            detail = f": {t.detail}" if t.detail else ""
            return GatewayUnavailable(f"the gateway keeps failing ({t.reason}, {tries}){detail}",
                                      "check the LiteLLM gateway's logs", status=t.status, attempts=attempts)
        return GatewayUnavailable(f"cannot get an answer from the gateway at {self._shown_url(self.base_url)}: "
                                  f"{t.reason} ({tries})", BASE_HINT, attempts=attempts)

    def _transport_failure(self, exc: Exception) -> _Transient:
        import httpx

        if isinstance(exc, httpx.ConnectTimeout):
            return _Transient(f"connecting timed out after {self.timeouts.connect:g} s", timeout=True)
        if isinstance(exc, httpx.ConnectError):
            return _Transient(_connect_reason(exc), detail=self._describe(exc))
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return _Transient("connection dropped", detail=self._describe(exc))
        if isinstance(exc, httpx.TimeoutException):
            return _Transient("timed out", detail=self._describe(exc), timeout=True)
        return _Transient("transport error", detail=self._describe(exc))

    def _raise_status(self, status: int, phrase: str, content: bytes, headers: Mapping[str, str], *,
                      what: str) -> None:
        detail = self._detail(content)
        if is_retryable_status(status):
            raise _Transient(f"{status} {phrase}".strip(), status=status, retry_after=parse_retry_after(headers, self._clock()),
                             detail=detail)
        said = f"; the gateway said: {detail}" if detail else ""
        if status == 401:
            if not self._has_key:
                raise GatewayAuthError("the gateway requires a key and none is set", "set LITELLM_API_KEY",
                                       status=401)
            raise GatewayAuthError("the gateway rejected the key (HTTP 401)", KEY_HINT + said, status=401)
        if status == 400 and detail.startswith("No connected db"):
            # LiteLLM's answer to a key that is not its master key when it has no database to
            # look virtual keys up in: a key problem, not a bad request.
            raise GatewayAuthError("the gateway could not check the key: it is not the proxy's master key, and the "
                                   "proxy has no database for virtual keys (HTTP 400)",
                                   "set LITELLM_API_KEY to the proxy's master key, or give the proxy its database",
                                   status=400)
        if status == 403:
            raise GatewayAuthError(f"the gateway key is not allowed to {what} (HTTP 403)", KEY_HINT + said,
                                   status=403)
        raise GatewayRejected(f"the gateway rejected the request to {what} (HTTP {status})" +
                              (f": {detail}" if detail else ""), status=status, detail=detail)

    async def _raise_chat_status(self, model: str, status: int, phrase: str, content: bytes,
                                 headers: Mapping[str, str]) -> None:
        detail = self._detail(content)
        if status == 404 or (status == 400 and _MODEL_MISSING.search(detail)):
            served = await self._served_models()
            if served is not None and model not in served:
                raise ModelNotFound(model, served)
            if status == 400 and served is None:  # the gateway itself said the model is missing
                raise ModelNotFound(model, None)
            if status == 404:
                # The model is listed (or nothing is: the models URL 404s too), so the 404 is
                # about the URL, e.g. LITELLM_API_BASE with a wrong path: say what was answered.
                url = self._shown_url(self.base_url + "/chat/completions")
                raise GatewayRejected(f"the gateway answered HTTP 404 to POST {url}" +
                                      (f"; it said: {detail}" if detail else ""),
                                      BASE_HINT + " (the URL of the gateway, with or without /v1)",
                                      status=404, detail=detail)
        self._raise_status(status, phrase, content, headers, what=f"use model {model!r}")

    async def _served_models(self) -> list[str] | None:
        try:
            return await self._list_models_once()
        except (GatewayError, _Transient):
            return None

    def _raise_in_stream_error(self, err: Any) -> None:
        if isinstance(err, dict):
            msg = str(err.get("message") or err.get("type") or "error")
            code = str(err.get("code") or "")
        else:
            msg, code = str(err), ""
        status = int(code) if code.isdigit() else 500
        detail = self._clip(self._redact(msg))
        if is_retryable_status(status):
            raise _Transient(f"the gateway reported an error mid-stream ({status})", status=status, detail=detail)
        self._raise_status(status, "", json.dumps({"error": {"message": msg}}).encode(), {}, what="stream")

    # ---- small helpers ---------------------------------------------------------------------

    def _detail(self, content: bytes) -> str:
        """The gateway's error message from an OpenAI/LiteLLM error body, one line, key masked."""
        text = content.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            err = data.get("error", data.get("detail", data.get("message")))
            if isinstance(err, dict):
                err = err.get("message") or err.get("error") or json.dumps(err)
            if err is not None:
                text = str(err)
        return self._clip(self._redact(text))

    @staticmethod
    def _clip(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= _DETAIL_MAX else text[:_DETAIL_MAX - 3] + "..."

    def _describe(self, exc: BaseException) -> str:
        return self._clip(self._redact(f"{type(exc).__name__}: {exc}"))

    def _shown_url(self, url: str) -> str:
        return mask_url_password(url)

    def _json(self, content: bytes, url: str) -> Any:
        try:
            return json.loads(content)
        except ValueError:
            raise GatewayProtocolError(f"{self._shown_url(url)} answered with something that is not JSON",
                                       "is LITELLM_API_BASE an OpenAI-compatible gateway?") from None


def _connect_reason(exc: BaseException) -> str:
    """'connection refused', 'host not found'... from the OS error under httpx's ConnectError."""
    import errno
    import socket

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host not found"
        if "refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return "cannot connect"


def _api_root(base_url: str) -> str:
    """http://host:4000, http://host:4000/ and http://host:4000/v1 all mean http://host:4000/v1."""
    root = (base_url or "").strip().rstrip("/")
    if not root:
        raise ValueError("the gateway base URL is empty (set LITELLM_API_BASE)")
    if "://" not in root:
        root = "http://" + root
    if not root.endswith("/v1"):
        root += "/v1"
    return root


def _float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f >= 0 else None
