"""The worker's health endpoints for Kubernetes probes (`lap-tui worker --health-port PORT`).

GET /livez   200 while the worker's loop has gone round recently (a hung loop fails it: restart)
GET /readyz  200 while the store answered the loop's last look for turns and it is not draining
GET /healthz the same as /livez

The worker loop reports to a `WorkerHealth` each time round; a probe reads it and never
touches the store itself, so probes cost the database nothing. A tiny HTTP/1.0 responder on
asyncio: one request per connection, no body read, nothing echoed back from the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

PATHS = ("/livez", "/readyz", "/healthz")


class WorkerHealth:
    """What the worker loop last reported, and what the probes make of it."""

    def __init__(self, *, stale_after: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._last_beat = clock()
        self._store_ok = False  # not ready until the store has answered once
        self._store_error = "the store has not answered yet"
        self.draining = False

    def beat(self, *, store_ok: bool, error: str = "") -> None:
        self._last_beat = self._clock()
        self._store_ok = store_ok
        self._store_error = error

    def liveness(self) -> tuple[bool, str]:
        age = self._clock() - self._last_beat
        if age > self.stale_after:
            return False, f"the worker loop has not run for {age:.0f} s"
        return True, "the worker loop runs"

    def readiness(self) -> tuple[bool, str]:
        live, why = self.liveness()
        if not live:
            return False, why
        if self.draining:
            return False, "draining: stopping after the current steps"
        if not self._store_ok:
            return False, f"the store is unreachable: {self._store_error}"
        return True, "the store answers"


async def serve_health(health: WorkerHealth, port: int, host: str = "0.0.0.0") -> asyncio.AbstractServer:
    """Listen for probes; the caller closes the returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            parts = head.split(b"\r\n", 1)[0].split()
            method = parts[0] if parts else b""
            path = parts[1].split(b"?", 1)[0].decode("ascii", "replace") if len(parts) > 1 else ""
            if method not in (b"GET", b"HEAD"):
                status, text = 405, "only GET"
            elif path not in PATHS:
                status, text = 404, "try /livez or /readyz"
            else:
                ok, text = health.readiness() if path == "/readyz" else health.liveness()
                status = 200 if ok else 503
            body = (text + "\n").encode()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + (body if method == b"GET" else b""))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
