"""A kill in a command's first milliseconds leaves nothing of it (issue 15 item 8 follow-up).

bwrap's pid 1 calls setsid (--new-session) and only then, after a fork, ties itself to bwrap's
life (--die-with-parent). A kill of bwrap's group and pid in between missed pid 1 and the
command ran on. These tests aim each kill at that moment: they watch pid 1 (bwrap's child) and
kill as soon as it has left bwrap's session, through the backend's own kill paths (a timeout's
or cancel's, and suspend's or delete's from another process, by the pid file), in both limit
modes, a bounded number of times, and count the commands that survived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from lap_tui.sandbox.local import LocalBackend
from tests.sandbox.conftest import Maker, forget_cgroups, live_processes
from tests.sandbox.test_limits import gone, marker

ROUNDS = 20


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2:].split()[3])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def _until_pid1_left_the_session(bwrap_pid: int) -> None:
    """Spin (no await: nothing else runs meanwhile) until bwrap's child, the sandbox's pid 1,
    leads a session of its own: the moment before it arms --die-with-parent. Bounded."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for child in _children(bwrap_pid):
            sid = _session_of(child)
            if sid is not None and sid != bwrap_pid:
                return
        if _session_of(bwrap_pid) is None:
            return  # bwrap is gone already


async def _started(backend: LocalBackend, sid: str):
    """The command's _Running as soon as exec has started bwrap."""
    for _ in range(100_000):
        running = backend._state(sid).running
        if running:
            return next(iter(running))
        await asyncio.sleep(0)
    raise AssertionError("exec never started bwrap")


@pytest.mark.parametrize("limits", ["auto", "rlimit"])
@pytest.mark.parametrize("path", ["timeout-or-cancel", "suspend-or-delete-elsewhere"])
async def test_a_kill_in_the_first_milliseconds_leaves_nothing(require_bwrap, sb_store, sb_settings, sb_environ,
                                                              limits, path):
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits=limits)
    other = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits=limits)  # another lap-tui process
    sid = await Maker(sb_store, backend).sandbox()
    survived: list[str] = []
    bad_rounds = 0
    try:
        for _ in range(ROUNDS):
            m = marker()
            task = asyncio.create_task(backend.exec(sid, ["sleep", m], timeout=None))
            running = await _started(backend, sid)
            _until_pid1_left_the_session(running.proc.pid)
            if path == "timeout-or-cancel":
                running.kill("timeout")  # what exec's timeout and cancel call
            else:
                other._kill_all(sid, "suspended")  # what suspend and delete call, found by the pid file
            left = await gone(m, within=5)  # the kernel ends a killed namespace in milliseconds
            if left:
                bad_rounds += 1
                survived += left
            for line in left:  # ours only, by pid: the command has our unique sleep length
                try:
                    os.kill(int(line.split(":")[0]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            r = await asyncio.wait_for(task, 30)  # a survivor held its output open: now it ends
            assert r.exit_code == 128 + signal.SIGKILL
    finally:
        await backend.close()
        forget_cgroups(backend)
    assert survived == [], f"processes outlived the kill in {bad_rounds} of {ROUNDS} rounds: {survived[:4]}"
    assert live_processes(sid) == []
