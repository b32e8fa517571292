"""The SSE reader (every split of the bytes gives the same events) and the idle watchdog."""

from __future__ import annotations

import asyncio

import pytest

from lap_tui.gateway.sse import IdleWatchdog, sse_data

STREAM = (b"\xef\xbb\xbf: a comment\r\n"
          b"data: {\"a\": 1}\r\n\r\n"
          b"event: message\nid: 7\ndata:first\ndata: second\n\n"
          b"data\n\n"
          b"retry: 10\rdata: cr only\r\r"
          b"data: [DONE]\n\n"
          b"data: cut off, never ended")
EVENTS = [b'{"a": 1}', b"first\nsecond", b"", b"cr only", b"[DONE]"]


async def collect(parts: list[bytes]) -> list[bytes]:
    async def chunks():
        for p in parts:
            yield p
    return [e async for e in sse_data(chunks())]


async def test_whole_stream() -> None:
    assert await collect([STREAM]) == EVENTS


async def test_every_two_way_split_gives_the_same_events() -> None:
    for i in range(len(STREAM) + 1):
        assert await collect([STREAM[:i], STREAM[i:]]) == EVENTS, f"split at {i}"


async def test_byte_by_byte() -> None:
    assert await collect([STREAM[i:i + 1] for i in range(len(STREAM))]) == EVENTS


async def test_blank_line_after_a_lone_cr_at_the_end() -> None:
    assert await collect([b"data: x\r", b"\r"]) == [b"x"]
    assert await collect([b"data: x\r"]) == []  # the event never ended


async def test_watchdog_fires_when_a_wait_passes_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    dog = IdleWatchdog()
    dog.arm(loop.time() + 0.05)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(1)
    assert dog.expired()  # it was the watchdog's: the cancel is taken back
    assert asyncio.current_task().cancelling() == 0
    dog.close()


async def test_watchdog_counts_only_time_spent_waiting() -> None:
    loop = asyncio.get_running_loop()
    dog = IdleWatchdog()
    for _ in range(4):
        dog.arm(loop.time() + 0.05)
        await asyncio.sleep(0.01)  # a wait well inside the deadline
        dog.disarm()
        await asyncio.sleep(0.08)  # the consumer is slow: not counted
    assert not dog.fired
    dog.close()


async def test_someone_elses_cancel_is_not_swallowed() -> None:
    loop = asyncio.get_running_loop()

    async def waiter() -> None:
        dog = IdleWatchdog()
        dog.arm(loop.time() + 10)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert not dog.expired()
            raise
        finally:
            dog.close()

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_paced_reads_wait_between_reads_never_between_the_chunks_of_one() -> None:
    """Reads that come back to back are spaced by the gap; the chunks one read holds (handed out
    without waiting, as httpcore hands out each HTTP chunk of a read) are never held apart
    (held per chunk, a 2,000 chunks/s stream crawled at 100/s)."""
    from lap_tui.gateway.sse import paced

    loop = asyncio.get_running_loop()
    reads = [[f"r{r}c{c}".encode() for c in range(5)] for r in range(4)]

    async def source(pause: float):
        for chunks in reads:
            await asyncio.sleep(pause)  # the network: the loop runs before the read's first chunk
            for c in chunks:
                yield c

    async def consume(pause: float, gap: float) -> tuple[list[bytes], list[bool]]:
        got, suspended, flag = [], [], [False]
        handle = None
        async for chunk in paced(source(pause), gap):
            if handle is not None:
                suspended.append(flag[0])  # did the loop run since the previous chunk came?
            flag[0] = False
            handle = loop.call_soon(lambda: flag.__setitem__(0, True))
            got.append(chunk)
        return got, suspended

    started = loop.time()
    got, suspended = await consume(0, gap=0.05)
    assert got == [c for r in reads for c in r]
    # per chunk after the first: only a read's first chunk follows a wait (the source's own)
    firsts = [i % 5 == 4 for i in range(len(got) - 1)]
    assert [s for s, f in zip(suspended, firsts) if not f] == [False] * (len(got) - 1 - 3)
    assert loop.time() - started >= 3 * 0.05 * 0.99  # three back-to-back reads after the first waited a gap each
