"""Server-sent events read straight from the response's bytes, and one timer for a stream's
idle timeout.

A gateway streams thousands of small events a second. Decoding them to text line by line
(httpx-sse) and entering a fresh asyncio timeout per event cost more than the JSON inside them,
and that time is taken from the terminal UI's event loop (measured with py-spy: 35% of the
stream's cost was the per-event timeout alone).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

_BOM = b"\xef\xbb\xbf"
READ_GAP = 0.02  # s: at most one network read this often (see `paced`)


async def paced(chunks: AsyncIterator[bytes], gap: float = READ_GAP) -> AsyncIterator[bytes]:
    """`chunks` with the network read at most once per `gap`: a fast stream's events pile up in
    the socket buffer meanwhile and come in one read. A read costs the event loop, the transport
    and the HTTP parser far more than a small event's JSON: the client alone at 2,000 events/s
    took 31% of a core reading each as it came, 10% with a 10 ms gap, 7% with 20 ms
    (tests/benchmarks/bench_gateway_read.py). The terminal shows text on a 50 ms tick, so 20 ms
    is never seen. A slow stream (a read later than `gap` after the last) is never held.

    One read holds many HTTP chunks, handed out one by one without waiting: only a chunk that
    needed the event loop (a callback queued before asking for it ran) started a new read, and
    only then is there a pause (pausing per chunk held a 2,000/s stream to 100 chunks/s)."""
    loop = asyncio.get_running_loop()
    it = aiter(chunks)
    waited = False
    last = float("-inf")

    def mark() -> None:
        nonlocal waited
        waited = True

    while True:
        waited = False
        handle = loop.call_soon(mark)
        try:
            chunk = await anext(it)
        except StopAsyncIteration:
            return
        finally:
            handle.cancel()
        if waited:
            now = loop.time()
            if now - last < gap:
                await asyncio.sleep(last + gap - now)
                now = loop.time()
            last = now
        yield chunk


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The data of each event, its `data:` lines joined by newlines (the SSE rules: lines end in
    CRLF, LF or CR; `:` starts a comment; other fields are ignored; a blank line ends an event;
    an event cut off by the end of the stream is dropped)."""
    buf = b""
    data: list[bytes] = []
    first = True
    async for chunk in chunks:
        if first and chunk:
            chunk, first = chunk.removeprefix(_BOM), False
        buf += chunk
        lines = buf.splitlines(keepends=True)
        # A line without its end (or ending in CR, whose LF may be in the next chunk) waits.
        buf = lines.pop() if lines and lines[-1][-1:] != b"\n" else b""
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
            elif line == b"data":
                data.append(b"")
    if buf.rstrip(b"\r\n") == b"" and buf and data:  # the stream ended right after a lone CR
        yield b"\n".join(data)


class IdleWatchdog:
    """Cancels the task it was made in when one wait runs past its deadline.

    One timer serves the whole stream: arming for the next wait only sets a float, and the timer
    is moved when it fires early. Only time spent inside a wait counts, so a slow consumer of
    the stream is never cancelled.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._deadline = 0.0
        self._waiting = False
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False

    def arm(self, deadline: float) -> None:
        self._deadline, self._waiting = deadline, True
        if self._handle is None or self._handle.when() > deadline:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(deadline, self._check)

    def disarm(self) -> None:
        self._waiting = False

    def _check(self) -> None:
        self._handle = None
        if not self._waiting:
            return  # the next arm() schedules again
        if self._loop.time() >= self._deadline:
            self.fired = True
            assert self._task is not None
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(self._deadline, self._check)

    def expired(self) -> bool:
        """After a CancelledError: whether it was this watchdog's (then the cancel is taken back)."""
        if not self.fired or self._task is None:
            return False
        self.fired = False
        return self._task.uncancel() == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
