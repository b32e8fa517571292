"""Several processes on one store: appends, migrations, leases, and SIGKILL mid-append."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lap_tui.store import open_store
from lap_tui.store.sql import LATEST
from tests.conftest import ROOT, make_session

WORKER = [sys.executable, "-m", "tests.support.journal_worker"]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*WORKER, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


async def test_two_processes_append_to_one_session(store, store_url):
    s = await make_session(store)
    finish([spawn("append", store_url, s.id, "300", "a"), spawn("append", store_url, s.id, "300", "b")])
    events = await store.read_events(s.id)
    assert [e.seq for e in events] == list(range(1, 601))  # no duplicate, no gap
    for tag in "ab":
        mine = [e.data["i"] for e in events if e.data["tag"] == tag]
        assert mine == list(range(300)), "each writer's events are all there, in its order"
    assert await store.last_seq(s.id) == 600


async def test_processes_migrating_at_once(store_url):
    # store_url is fresh and unmigrated: the fixture `store` is not used here.
    outs = finish([spawn("migrate", store_url) for _ in range(4)])
    assert all(o.startswith("migrated") for o in outs)
    assert sum(o.split()[1:] == ["0", str(LATEST)] for o in outs) == 1, outs  # exactly one applied it
    s = await open_store(store_url, migrate=False)
    try:
        assert await s.check_schema() == LATEST
    finally:
        await s.close()


async def test_lease_has_one_holder_across_processes(store, store_url):
    s = await make_session(store)
    finish([spawn("lease", store_url, s.id, f"h{i}", "15") for i in range(3)])
    events = await store.read_events(s.id)
    assert len(events) == 3 * 15 * 2
    # Every enter is followed by the same holder's exit before anyone else enters.
    for enter, exit_ in zip(events[::2], events[1::2]):
        assert (enter.kind, exit_.kind) == ("test.enter", "test.exit")
        assert enter.data["holder"] == exit_.data["holder"]


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
async def test_sigkill_while_appending_leaves_a_consistent_journal(store, store_url, delay):
    s = await make_session(store)
    proc = spawn("forever", store_url, s.id)
    assert proc.stdout.readline().startswith("ready")
    deadline = time.monotonic() + 30
    while await store.last_seq(s.id) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    last = await store.last_seq(s.id)
    events = await store.read_events(s.id)
    assert last >= 20
    assert [e.seq for e in events] == list(range(1, last + 1))
    assert [e.data["i"] for e in events] == list(range(last))
    # The journal takes new appends right after the crash (no stale lock or hole).
    ev = await store.append(s.id, "after.crash")
    assert ev.seq == last + 1
    if store.kind == "sqlite":
        async with store._read() as db:
            assert (await db.fetch("PRAGMA integrity_check"))[0][0] == "ok"
