"""Waiting for conditions, never for time, and finding the processes a test itself started.

Every wait has a generous limit (a busy machine is slow, not broken) and fails loudly with
what it was waiting for and what it saw last.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

LIMIT = 60.0  # seconds: generous, so only a real hang reaches it on a loaded 2-core machine


async def until(check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = LIMIT,
                interval: float = 0.02) -> Any:
    """Await `check()` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


def until_sync(check: Callable[[], Any], what: str, timeout: float = LIMIT, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _stat(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, argv) of a live process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
    return ppid, [a.decode(errors="replace") for a in argv if a]


def descendants(root: int | None = None) -> dict[int, list[str]]:
    """Every live process below `root` (default: this test process): pid -> argv.

    Only these are processes the test started (through the code under test); a test that
    kills something picks it from here, by pid, never by a name another user's process may
    share (pkill -f)."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    argvs: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))):
            parents[int(entry)], argvs[int(entry)] = st
    out = {}
    for pid in parents:
        p, seen = pid, 0
        while p in parents and seen < 512:
            p, seen = parents[p], seen + 1
            if p == root:
                out[pid] = argvs[pid]
                break
    return out


def my_processes(argv: list[str]) -> list[int]:
    """Pids of the test's own descendants whose argv is exactly `argv`."""
    return [pid for pid, a in descendants().items() if a == argv]
