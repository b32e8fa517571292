"""Security issue 15.14: a sandbox's cgroups go when its processes end (325 had piled up under cpu).

Only where lap-tui can write cgroups (root, or a delegated cgroup v2); under CI=true it must.
"""

from __future__ import annotations

import asyncio

import pytest

from lap_tui.sandbox.local import LocalBackend
from tests.conftest import need
from tests.sandbox.conftest import Maker, live_processes


@pytest.fixture
def cg_backend(backend):
    need(backend._cgroups.available(), f"sandbox cgroups unavailable here: {backend.limits_in_use()}")
    return backend


def existing(backend, sid) -> list[str]:
    return [str(d) for d in backend._cgroups.dirs(sid) if d.exists()]


async def gone(backend, sid) -> list[str]:
    """The sandbox's cgroup dirs still there once they are gone, or after 30 s. bwrap reports the
    exit while its pid namespace is still dying, so removal may take a moment."""
    for _ in range(1500):
        if not existing(backend, sid):
            break
        await asyncio.sleep(0.02)
    return existing(backend, sid)


async def started(backend, sid, seconds: int = 60) -> asyncio.Task:
    """A command that runs until killed, once it runs (a kill while bwrap sets up is
    tests/sandbox/test_early_kill.py's business)."""
    up = asyncio.Event()
    task = asyncio.create_task(backend.exec(sid, ["sh", "-c", f"echo up; exec sleep {seconds}"], timeout=None,
                                            on_output=lambda _name, _chunk: up.set()))
    await asyncio.wait_for(up.wait(), 60)
    return task


async def test_a_sandboxs_cgroups_go_when_its_commands_end(cg_backend, make):
    b = cg_backend
    sid = await make.sandbox()
    r = await b.exec(sid, ["sh", "-c", "sleep 60 & echo started"])  # a background process dies with it
    assert r.stdout == b"started\n"
    assert await gone(b, sid) == []
    # while a command runs its cgroup is there, and a second command ending does not take it away
    long = await started(b, sid)
    assert (await b.exec(sid, ["true"])).exit_code == 0
    assert existing(b, sid) and b._cgroups.pids(sid)
    await b.suspend(sid)
    r = await long
    assert r.killed == "suspended"
    assert await gone(b, sid) == []
    # timeouts and cancellations end commands too
    r = await b.exec(sid, ["sleep", "60"], timeout=3)
    assert r.timed_out and await gone(b, sid) == []
    task = await started(b, sid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(b, sid) == []


async def test_a_cgroup_removed_between_prepare_and_start_is_made_again_with_its_limits(cg_backend, make):
    """Another lap-tui process may remove the (empty) cgroup in that window: the command still
    runs inside a limited cgroup."""
    b = cg_backend
    sid = await make.sandbox(memory="64Mi")
    prepare = b._cgroups.prepare

    def prepare_then_removed(sandbox_id, limits):
        joins = prepare(sandbox_id, limits)
        for d in b._cgroups.dirs(sandbox_id):
            d.rmdir()  # as the other process would, at the worst moment
        return joins

    b._cgroups.prepare = prepare_then_removed
    r = await b.exec(sid, ["python3", "-c", "s = b'x' * (512 * 2**20); print(len(s))"], timeout=60)
    assert r.exit_code != 0 and r.stdout == b"", "the memory limit did not hold in the cgroup made again"
    r = await b.exec(sid, ["sh", "-c", "echo ok"])
    assert r.stdout == b"ok\n" and await gone(b, sid) == []


async def test_empty_cgroups_left_behind_are_swept_at_start(require_bwrap, sb_store, sb_settings, sb_environ):
    first = LocalBackend(sb_store, sb_settings, environ=sb_environ)
    need(first._cgroups.available(), f"sandbox cgroups unavailable here: {first.limits_in_use()}")
    maker = Maker(sb_store, first)
    sid = await maker.sandbox()
    # a process that died before it could remove its sandbox's cgroup (SIGKILL, power cut)
    for d in first._cgroups.dirs(sid):
        d.mkdir(exist_ok=True)
    busy = await started(first, sid)
    other = await maker.sandbox()
    for d in first._cgroups.dirs(other):
        d.mkdir(exist_ok=True)
    second = LocalBackend(sb_store, sb_settings, environ=sb_environ)
    assert second._cgroups.available()
    assert existing(second, other) == []  # the empty one went
    assert existing(second, sid) and second._cgroups.pids(sid)  # the busy one stays
    busy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await busy
    assert await gone(first, sid) == [] and not live_processes(f"sandboxes/{sid}/")
    await first.close()
    await second.close()
