"""A scripted OpenAI-compatible (LiteLLM-like) gateway over real HTTP on 127.0.0.1.

In process (tests):

    with ScriptedGateway(models=["gpt-test"]) as gw:
        gw.push(stream(["Hel", "lo"], usage={"prompt_tokens": 3, "completion_tokens": 2}, cost=0.0042))
        ... GatewayClient(gw.base_url, "sk-test") ...
        gw.chat_requests[0].body["messages"]

As a subprocess (the TUI's tmux end-to-end test, the stream benchmark):

    python -m tests.support.scripted_gateway --port 0 --script script.json
    python -m tests.support.scripted_gateway --port 4011 --scenario words --words 20000 \
        --paragraph-every 100 --done-word BIG-DONE

It prints `READY http://127.0.0.1:PORT` on stdout once listening. See ScriptedGatewayProcess.

A script is JSON: either a list of responses, or
    {"models": [...], "api_key": "sk-..." | null, "strict_models": false,
     "responses": [...], "default": RESPONSE | null}
Each chat request takes the next queued response whose "path" matches (default
"/v1/chat/completions"; "/v1/models" entries override the model list for one request).
When the queue is empty, `default` answers (it is never used up); with no default the
server answers 400 "script exhausted" (not retried by clients, so a test fails loudly).

Response types ("type", default "stream"):
  stream        chunks: [str]            text pieces, one SSE event each
                tool_calls: [{"id", "name", "arguments": str | [str], "fragment_size": int}]
                interleave: bool         round-robin tool-call fragments across calls
                finish_reason: str       default "tool_calls" when tool calls, else "stop"
                usage: {..} | "auto" | null   the include_usage chunk ("auto": counted, only if asked)
                usage_cost: float        put "cost" into the usage chunk (LiteLLM's streaming cost)
                cost: float              x-litellm-response-cost response header
                delay: s between events; first_delay: s before the response headers
                wait_file: path, wait_max: s   hold the response until that file exists (any type)
                stamps: N               N more chunks "[<unix time when sent>]" (latency benchmarks)
                drop_after: N            close the connection after N content events (mid-stream drop)
                stall_after: N, stall_s  go silent for stall_s after N content events, then continue
                done: bool               send data: [DONE] (default true)
                headers: {..}; model: str (default: the requested model)
  words         n, paragraph_every (0 = never), done_word, prefix ("word"), delay: the benchmark
                stream "word0 word1 ... DONE" (a "\n\n" before every paragraph_every-th word)
  echo          streams "echo: <last user message>" word by word (prefix: override "echo: ")
  error         status, body (default LiteLLM-like), headers (e.g. {"Retry-After": "0.2"}), message
  unknown_model status (default 404): LiteLLM's "Invalid model name passed in model=X" body
  bad_key       401 with LiteLLM's authentication error body
  json          status (200), body, headers: a whole non-streamed answer
  raw_sse       events: [str | object] sent as `data:` lines as given (objects as JSON), then [DONE]
  hangup        close the connection without answering
Anthropic Messages (POST /v1/messages) and OpenAI Responses (POST /v1/responses) render the
same "stream" responses in their own formats (scripted_apis.py): queue them with that "path";
"requires_tools": true keeps a response for a request that offers tools (a CLI's main loop,
not its side requests); `path_defaults[path]` answers the rest.
Control endpoints (for a subprocess): GET /_scripted/requests, POST /_scripted/responses
(a JSON list, appended), POST /_scripted/reset.

LiteLLM virtual keys (with `api_key` set: it is the master key): POST /key/generate (admin;
`key` must start with sk-, a reused `key_alias` or key is refused with LiteLLM's 400 "already
exists"; `max_budget`, `duration`, `metadata`), /key/update (`max_budget`), /key/delete
(`keys`: raw or hashed; an unknown one gets 404 "Key not found"). `gw.virtual_keys` holds them
(spend included). A request with a virtual key is refused when the key is expired (401) or its
spend has reached max_budget (`budget_status`, default 400: {"type": "budget_exceeded",
"message": "Budget has been exceeded! Key=<hash> Current cost: X, Max budget: Y"}); an answer's
`cost`/`usage_cost` is added to the key's spend. Any other key is refused (401).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

from tests.support import scripted_apis

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---- response builders (plain dicts: the same format as a JSON script) ----------------------

def stream(chunks: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {"type": "stream", "chunks": list(chunks or []), **kw}


def tool_call(id: str, name: str, arguments: str | list[str], fragment_size: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"id": id, "name": name, "arguments": arguments}
    if fragment_size:
        d["fragment_size"] = fragment_size
    return d


def error(status: int, message: str | None = None, *, headers: dict[str, str] | None = None,
          body: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "error", "status": status, "headers": headers or {}}
    if message is not None:
        d["message"] = message
    if body is not None:
        d["body"] = body
    return d


def words(n: int, paragraph_every: int = 0, done_word: str = "DONE", **kw: Any) -> dict[str, Any]:
    return {"type": "words", "n": n, "paragraph_every": paragraph_every, "done_word": done_word, **kw}


# ---- the server -----------------------------------------------------------------------------

@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; Authorization kept so tests can assert on it
    body: Any  # parsed JSON, or None
    at: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "headers": self.headers, "body": self.body, "at": self.at}


def _norm_path(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if not path.startswith("/v1/") and not path.startswith("/_scripted"):
        path = "/v1" + path
    return path


class ScriptedGateway:
    def __init__(self, responses: list[dict[str, Any]] | None = None, *, models: list[str] | None = None,
                 api_key: str | None = None, strict_models: bool = False, default: dict[str, Any] | None = None,
                 host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self.models = list(models if models is not None else ["gpt-test"])
        self.api_key = api_key
        self.strict_models = strict_models
        self.default = default
        self.path_defaults: dict[str, dict[str, Any]] = {}  # /v1/messages, /v1/responses: never used up
        self.verbose = verbose
        self._queue: list[dict[str, Any]] = list(responses or [])
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.virtual_keys: dict[str, dict[str, Any]] = {}  # key -> {key_alias, max_budget, spend, expires, ...}
        self.budget_status = 400  # LiteLLM answered 400 for an exceeded budget; newer releases 429

    @classmethod
    def from_script(cls, script: Any, **kw: Any) -> "ScriptedGateway":
        if isinstance(script, list):
            return cls(script, **kw)
        return cls(script.get("responses", []), models=script.get("models"), api_key=script.get("api_key"),
                   strict_models=bool(script.get("strict_models", False)), default=script.get("default"), **kw)

    # lifecycle
    def start(self) -> "ScriptedGateway":
        server = _Server((self._host, self._port), _Handler)
        server.gateway = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "ScriptedGateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # script and records
    def push(self, *responses: dict[str, Any]) -> None:
        with self._lock:
            self._queue.extend(responses)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH]

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _take(self, path: str, body: Any = None) -> dict[str, Any] | None:
        has_tools = isinstance(body, dict) and bool(body.get("tools"))
        with self._lock:
            for i, r in enumerate(self._queue):
                if _norm_path(r.get("path", CHAT_PATH)) == path and (has_tools or not r.get("requires_tools")):
                    return self._queue.pop(i)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # a client that hung up (tests do this on purpose)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-gateway/1"
    server: ThreadingHTTPServer

    @property
    def gw(self) -> ScriptedGateway:
        return self.server.gateway  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.gw.verbose:
            sys.stderr.write("scripted-gateway: " + (format % args) + "\n")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # dispatch
    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = _norm_path(self.path)
        gw = self.gw
        try:
            if path.startswith("/_scripted"):
                return self._control(method, path, body)
            gw._record(RecordedRequest(method, path, {k.lower(): v for k, v in self.headers.items()}, body))
            if path.startswith(KEY_PATHS) and method == "POST":
                return self._key_admin(path, body if isinstance(body, dict) else {})
            vkey = self._virtual_key()
            if vkey is not None:
                refused = self._virtual_refusal(vkey)
                if refused is not None:
                    return self._send_json(*refused)
            elif gw.api_key is not None and self.headers.get("Authorization") != f"Bearer {gw.api_key}":
                return self._send_json(401, _bad_key_body())
            if path == MODELS_PATH and method == "GET":
                resp = gw._take(path)
                if resp is None:
                    return self._send_json(200, _models_body(gw.models))
                return self._respond(resp, body)
            if path == CHAT_PATH and method == "POST":
                model = (body or {}).get("model", "")
                if gw.strict_models and model not in gw.models:
                    return self._respond({"type": "unknown_model"}, body)
                resp = gw._take(path) or gw.default
                if resp is None:
                    return self._send_json(400, _err_body(
                        f"scripted gateway: script exhausted, no response left for {method} {path}", 400))
                return self._respond(resp, body)
            if path in (scripted_apis.MESSAGES_PATH, scripted_apis.RESPONSES_PATH) and method == "POST":
                resp = gw._take(path, body) or gw.path_defaults.get(path)
                if resp is None:
                    return self._send_json(400, _err_body(
                        f"scripted gateway: script exhausted, no response left for {method} {path}", 400))
                return self._respond_api(path, resp, body if isinstance(body, dict) else {})
            self._send_json(404, {"detail": "Not Found"})
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    # LiteLLM's virtual keys
    def _virtual_key(self) -> dict[str, Any] | None:
        auth = self.headers.get("Authorization") or ""
        with self.gw._lock:
            return self.gw.virtual_keys.get(auth[7:]) if auth.startswith("Bearer ") else None

    def _virtual_refusal(self, vkey: dict[str, Any]) -> tuple[int, Any] | None:
        if vkey.get("expires") is not None and time.time() > vkey["expires"]:
            return 401, _err_body(f"Authentication Error - Expired Key. Key Expiry time {vkey['expires']} and "
                                  f"current time {time.time()}", 401, type_="expired_key")
        budget = vkey.get("max_budget")
        if budget is not None and vkey["spend"] >= budget:
            status = self.gw.budget_status
            return status, _err_body(f"Budget has been exceeded! Key={vkey['token']} Current cost: {vkey['spend']}, "
                                     f"Max budget: {budget}", status, type_="budget_exceeded")
        return None

    def _key_admin(self, path: str, body: dict[str, Any]) -> None:
        gw = self.gw
        if gw.api_key is None or self.headers.get("Authorization") != f"Bearer {gw.api_key}":
            return self._send_json(401, _bad_key_body())
        with gw._lock:
            keys = gw.virtual_keys
            if path == "/v1/key/generate":
                key = body.get("key") or f"sk-{os.urandom(16).hex()}"
                alias = body.get("key_alias")
                if not str(key).startswith("sk-"):
                    return self._send_json(400, {"error": {"message": "Invalid key format. LiteLLM Virtual Key must "
                                                           f"start with 'sk-'. Received: {key[:4]}****{key[-4:]}",
                                                           "type": "bad_request_error", "param": "key", "code": "400"}})
                if alias and any(k["key_alias"] == alias for k in keys.values()):
                    return self._send_json(400, _err_body(f"Key with alias '{alias}' already exists. Unique key "
                                                          "aliases across all keys are required.", 400,
                                                          param="key_alias", type_="bad_request_error"))
                if key in keys:
                    return self._send_json(400, _err_body("Unique constraint failed on the fields: (`token`)", 400))
                duration = body.get("duration")
                keys[key] = {"key_alias": alias, "max_budget": body.get("max_budget"), "spend": 0.0,
                             "duration": duration, "expires": time.time() + _seconds(duration) if duration else None,
                             "metadata": body.get("metadata") or {}, "token": _hash_key(key)}
                return self._send_json(200, {"key": key, "key_alias": alias, "max_budget": body.get("max_budget"),
                                             "token": _hash_key(key), "metadata": keys[key]["metadata"]})
            if path == "/v1/key/update":
                key = body.get("key", "")
                found = keys.get(key) or next((v for v in keys.values() if v["token"] == key), None)
                if found is None:
                    return self._send_json(404, _err_body("Key not found", 404, type_="not_found_error"))
                if "max_budget" in body:
                    found["max_budget"] = body["max_budget"]
                return self._send_json(200, {"key": key, "max_budget": found["max_budget"]})
            if path == "/v1/key/delete":
                wanted = [str(k) for k in body.get("keys") or []]
                found = [k for k, v in keys.items() if k in wanted or v["token"] in wanted]
                if len(found) != len(wanted) or not wanted:
                    return self._send_json(404, _err_body("Key not found", 404, type_="not_found_error"))
                for k in found:
                    del keys[k]
                return self._send_json(200, {"deleted_keys": wanted})
        self._send_json(404, {"detail": "Not Found"})

    def _control(self, method: str, path: str, body: Any) -> None:
        gw = self.gw
        if path == "/_scripted/requests" and method == "GET":
            return self._send_json(200, [r.to_dict() for r in gw.requests])
        if path == "/_scripted/responses" and method == "POST":
            gw.push(*(body if isinstance(body, list) else [body]))
            return self._send_json(200, {"queued": gw.remaining})
        if path == "/_scripted/reset" and method == "POST":
            gw.reset()
            return self._send_json(200, {"ok": True})
        self._send_json(404, {"detail": "Not Found"})

    def _respond(self, r: dict[str, Any], req: Any) -> None:
        self._charge_virtual_key(r)
        kind = r.get("type", "stream")
        model = (req or {}).get("model", "") if isinstance(req, dict) else ""
        if r.get("first_delay"):
            self.gw.stopping.wait(float(r["first_delay"]))
        if r.get("wait_file"):  # hold the answer until the test creates this file (a condition, not a time)
            deadline = time.monotonic() + float(r.get("wait_max", 120))
            while not os.path.exists(r["wait_file"]) and time.monotonic() < deadline:
                if self.gw.stopping.wait(0.02):
                    break
        if kind == "stream":
            return self._stream(r, req, _stream_events(r, req))
        if kind == "words":
            return self._stream(r, req, _word_events(r))
        if kind == "echo":
            return self._stream(r, req, _echo_events(r, req))
        if kind == "raw_sse":
            return self._raw_sse(r)
        if kind == "error":
            status = int(r.get("status", 500))
            body = r.get("body", _err_body(r.get("message") or _default_message(status), status))
            return self._send_json(status, body, r.get("headers"))
        if kind == "unknown_model":
            status = int(r.get("status", 404))
            msg = (f"/chat/completions: Invalid model name passed in model={r.get('model', model)}. "
                   "Call `/v1/models` to view available models for your key.")
            return self._send_json(status, _err_body(msg, status, param="model"), r.get("headers"))
        if kind == "bad_key":
            return self._send_json(401, _bad_key_body(), r.get("headers"))
        if kind == "json":
            return self._send_json(int(r.get("status", 200)), r.get("body"), r.get("headers"))
        if kind == "hangup":
            self._drop()
            return
        raise ValueError(f"scripted gateway: unknown response type {kind!r}")

    def _charge_virtual_key(self, r: dict[str, Any]) -> None:
        """What the answer costs goes to the requesting virtual key's spend (as LiteLLM tracks it)."""
        vkey = self._virtual_key()
        cost = r.get("usage_cost", r.get("cost"))
        if vkey is not None and isinstance(cost, (int, float)) and r.get("type", "stream") in ("stream", "json"):
            with self.gw._lock:
                vkey["spend"] += float(cost)

    def _respond_api(self, path: str, r: dict[str, Any], req: dict[str, Any]) -> None:
        """Anthropic Messages or OpenAI Responses (tests/support/scripted_apis.py)."""
        if r.get("type", "stream") != "stream":
            return self._respond(r, req)
        self._charge_virtual_key(r)
        if r.get("wait_file") or r.get("first_delay"):
            if r.get("first_delay"):
                self.gw.stopping.wait(float(r["first_delay"]))
            deadline = time.monotonic() + float(r.get("wait_max", 120))
            while r.get("wait_file") and not os.path.exists(r["wait_file"]) and time.monotonic() < deadline:
                if self.gw.stopping.wait(0.02):
                    break
        messages = path == scripted_apis.MESSAGES_PATH
        if not req.get("stream"):
            body = scripted_apis.messages_json(r, req) if messages else None
            return self._send_json(200, body or {"error": "the Responses API is scripted streamed only"},
                                   {"x-litellm-response-cost": r["cost"]} if r.get("cost") is not None else None)
        self._start_stream(r)
        events = scripted_apis.messages_events(r, req) if messages else scripted_apis.responses_events(r, req)
        for name, data in events:
            self._chunk(b"event: " + name.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n")
        self._end()

    # writing
    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, r: dict[str, Any]) -> None:
        self.send_response(int(r.get("status", 200)))
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if r.get("cost") is not None:
            self.send_header("x-litellm-response-cost", str(r["cost"]))
        for k, v in (r.get("headers") or {}).items():
            self.send_header(k, str(v))
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        self._chunk(b"data: " + text.encode() + b"\n\n")

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stream(self, r: dict[str, Any], req: Any, events: Iterator[tuple[str, Any]]) -> None:
        """events yields ("content", payload) / ("meta", payload); content events count for drop/stall."""
        self._start_stream(r)
        delay = float(r.get("delay", 0) or 0)
        drop_after = r.get("drop_after")
        stall_after = r.get("stall_after")
        n = 0
        for what, payload in events:
            if what == "content":
                if drop_after is not None and n >= int(drop_after):
                    return self._drop()
                if stall_after is not None and n == int(stall_after):
                    if self.gw.stopping.wait(float(r.get("stall_s", 30))):
                        return self._drop()
                n += 1
            self._event(payload)
            if delay:
                time.sleep(delay)
        if drop_after is not None and n >= int(drop_after):
            return self._drop()
        if r.get("done", True):
            self._event("[DONE]")
        self._end()

    def _raw_sse(self, r: dict[str, Any]) -> None:
        self._start_stream(r)
        for e in r.get("events", []):
            self._event(e)
        if r.get("done", True):
            self._event("[DONE]")
        self._end()


# ---- stream content ---------------------------------------------------------------------------

_CREATED = 1_700_000_000


def _chunk_obj(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": _CREATED, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _tool_fragments(call: dict[str, Any]) -> list[str]:
    args = call.get("arguments", "")
    if isinstance(args, list):
        return [str(a) for a in args]
    if not isinstance(args, str):
        args = json.dumps(args)
    size = int(call.get("fragment_size", 7))
    return [args[i:i + size] for i in range(0, len(args), size)] or [""]


def _stream_events(r: dict[str, Any], req: Any) -> Iterator[tuple[str, Any]]:
    req = req if isinstance(req, dict) else {}
    model = r.get("model") or req.get("model") or "gpt-test"
    yield "meta", _chunk_obj(model, {"role": "assistant", "content": ""})
    chunks = [str(c) for c in r.get("chunks", [])]
    for c in chunks:
        yield "content", _chunk_obj(model, {"content": c})
    for _ in range(int(r.get("stamps", 0))):  # "[<send time>]" chunks, for latency benchmarks
        chunks.append("")
        yield "content", _chunk_obj(model, {"content": f"[{time.time():.6f}]"})
    calls = r.get("tool_calls") or []
    seqs: list[list[dict[str, Any]]] = []
    for i, call in enumerate(calls):
        frags = _tool_fragments(call)
        first = {"index": i, "id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": frags[0]}}
        seqs.append([first] + [{"index": i, "function": {"arguments": f}} for f in frags[1:]])
    if r.get("interleave"):
        pos = 0
        while any(pos < len(s) for s in seqs):
            for s in seqs:
                if pos < len(s):
                    yield "content", _chunk_obj(model, {"tool_calls": [s[pos]]})
            pos += 1
    else:
        for s in seqs:
            for d in s:
                yield "content", _chunk_obj(model, {"tool_calls": [d]})
    finish = r.get("finish_reason") or ("tool_calls" if calls else "stop")
    yield "meta", _chunk_obj(model, {}, finish)
    usage = r.get("usage", "auto")
    if usage == "auto":
        if not (req.get("stream_options") or {}).get("include_usage"):
            usage = None
        else:
            prompt = sum(len(str(m.get("content") or "").split()) for m in req.get("messages", []) if isinstance(m, dict))
            usage = {"prompt_tokens": prompt, "completion_tokens": len(chunks) + len(calls)}
    if usage is not None:
        usage = dict(usage)
        usage.setdefault("total_tokens", int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)))
        if r.get("usage_cost") is not None:
            usage["cost"] = r["usage_cost"]
        yield "meta", {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": _CREATED,
                       "model": model, "choices": [], "usage": usage}


def _word_events(r: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    n, every = int(r.get("n", 100)), int(r.get("paragraph_every", 0) or 0)
    prefix, done = r.get("prefix", "word"), r.get("done_word", "DONE")
    model = r.get("model") or "gpt-test"
    head = '{"id":"chatcmpl-scripted","object":"chat.completion.chunk","created":%d,"model":%s,' \
           '"choices":[{"index":0,"delta":{"content":' % (_CREATED, json.dumps(model))
    tail = '},"finish_reason":null}]}'
    yield "meta", _chunk_obj(model, {"role": "assistant", "content": ""})
    for i in range(n):
        text = ("\n\n" if every and i and i % every == 0 else "") + f"{prefix}{i} "
        yield "content", head + json.dumps(text) + tail  # pre-rendered: fast for 20,000 events
    yield "content", _chunk_obj(model, {"content": ("\n\n" if every else "") + done})
    yield "meta", _chunk_obj(model, {}, "stop")
    yield "meta", {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": _CREATED, "model": model,
                   "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": n + 1, "total_tokens": n + 2}}


def _echo_events(r: dict[str, Any], req: Any) -> Iterator[tuple[str, Any]]:
    req = req if isinstance(req, dict) else {}
    last = ""
    for m in req.get("messages", []):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            last = m["content"]
    text = r.get("prefix", "echo: ") + last
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    yield from _stream_events({**r, "chunks": [p for p in pieces if p]}, req)


# ---- LiteLLM-like bodies ------------------------------------------------------------------------

def _err_body(message: str, status: int, *, param: str | None = None, type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_ or ("invalid_request_error" if status < 500 else "internal_server_error"),
                      "param": param, "code": str(status)}}


KEY_PATHS = ("/v1/key/generate", "/v1/key/update", "/v1/key/delete")


def _hash_key(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def _seconds(duration: str) -> float:
    """LiteLLM's duration: 30s, 5m, 12h, 7d, 2w, 1mo."""
    import re

    m = re.match(r"^([0-9]+)(s|m|h|d|w|mo)$", str(duration))
    if not m:
        raise ValueError(f"bad duration {duration!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2592000}[m.group(2)]


def _bad_key_body() -> dict[str, Any]:
    return _err_body("Authentication Error, Invalid proxy server token passed. Unable to find token in cache "
                     "or `LiteLLM_VerificationTokenTable`", 401, type_="auth_error")


def _models_body(models: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": _CREATED, "owned_by": "openai"}
                                       for m in models]}


def _default_message(status: int) -> str:
    return {429: "litellm.RateLimitError: Rate limit reached. Try again later.",
            500: "litellm.InternalServerError: scripted failure",
            502: "Bad Gateway", 503: "litellm.ServiceUnavailableError: scripted"}.get(status, f"scripted error {status}")


# ---- subprocess helper ------------------------------------------------------------------------

class ScriptedGatewayProcess:
    """Runs `python -m tests.support.scripted_gateway` and waits until it listens."""

    def __init__(self, script: Any = None, *, args: list[str] | None = None, script_path: Path | None = None,
                 python: str = sys.executable, startup_timeout: float = 15.0) -> None:
        self.script, self.args, self.script_path = script, list(args or []), script_path
        self.python, self.startup_timeout = python, startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self._tmp: Path | None = None

    def start(self) -> "ScriptedGatewayProcess":
        cmd = [self.python, "-m", "tests.support.scripted_gateway", "--port", "0", *self.args]
        if self.script is not None:
            import tempfile
            fd, name = tempfile.mkstemp(prefix="scripted-gateway-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(self.script, fh)
            self._tmp = Path(name)
            cmd += ["--script", name]
        elif self.script_path is not None:
            cmd += ["--script", str(self.script_path)]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self.startup_timeout)
        line = result[0].strip() if result else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"scripted gateway did not start (got {line!r})")
        self.base_url = line.split(" ", 1)[1]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ScriptedGatewayProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.base_url + "/_scripted/requests", timeout=10) as r:
            return json.load(r)

    def push(self, *responses: dict[str, Any]) -> None:
        req = urllib.request.Request(self.base_url + "/_scripted/responses", data=json.dumps(list(responses)).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.scripted_gateway",
                                description="A scripted OpenAI-compatible gateway on 127.0.0.1 (see the module doc).")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on the READY line)")
    p.add_argument("--script", type=Path, help="JSON script: a list of responses or an object (see the module doc)")
    p.add_argument("--models", help="comma-separated model names served by /v1/models")
    p.add_argument("--api-key", help="answer 401 unless this key is sent as a Bearer token")
    p.add_argument("--scenario", choices=["words", "echo"],
                   help="a default response for every chat request: 'words' (benchmark stream) or 'echo'")
    p.add_argument("--words", type=int, default=5000, help="words scenario: number of word chunks")
    p.add_argument("--paragraph-every", type=int, default=0, help="words scenario: a paragraph break every K words")
    p.add_argument("--done-word", default="DONE", help="words scenario: the last word")
    p.add_argument("--delay", type=float, default=0.0, help="seconds between stream events (default: none)")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    a = p.parse_args(argv)
    script: Any = json.loads(a.script.read_text()) if a.script else {}
    gw = ScriptedGateway.from_script(script, port=a.port, verbose=a.verbose)
    if a.models:
        gw.models = [m.strip() for m in a.models.split(",") if m.strip()]
    if a.api_key is not None:
        gw.api_key = a.api_key
    if a.scenario == "words":
        gw.default = words(a.words, a.paragraph_every, a.done_word, delay=a.delay)
    elif a.scenario == "echo":
        gw.default = {"type": "echo", "delay": a.delay}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gw.start()
    print(f"READY {gw.base_url}", flush=True)
    try:
        stop.wait()
    finally:
        gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
