"""Whole process trees die, resources are bounded, output is capped, nothing outlives lap-tui."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lap_tui.sandbox.local import LocalBackend
from tests.conftest import need
from tests.sandbox.conftest import forget_cgroups, live_processes

ROOT = Path(__file__).resolve().parents[2]


def marker() -> str:
    return str(random.randint(10**8, 10**9 - 1))  # unique sleep lengths to find our processes by


async def gone(m: str, within: float = 10.0) -> list[str]:
    """Processes still alive after waiting (bounded) for the kernel to finish killing them."""
    deadline = time.monotonic() + within
    while (left := live_processes(m)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


async def test_timeout_kills_children_and_grandchildren(backend, make):
    sid = await make.sandbox()
    m = marker()
    script = (f"sleep {m}1 & setsid sh -c 'sleep {m}2 & sleep {m}3' & (trap '' TERM HUP INT; sleep {m}4) & "
              f"echo started; sleep {m}5")
    r = await backend.exec(sid, ["sh", "-c", script], timeout=1)
    assert r.timed_out and r.killed == "timeout"
    assert r.exit_code == 128 + signal.SIGKILL
    assert r.stdout == b"started\n"
    assert await gone(m) == []


async def test_cancel_kills_the_tree(backend, make):
    sid = await make.sandbox()
    m = marker()
    task = asyncio.create_task(backend.exec(sid, ["sh", "-c", f"sleep {m}1 & touch go; sleep {m}2"]))
    ws = backend.workspace(sid)
    for _ in range(500):
        if (ws / "go").exists():
            break
        await asyncio.sleep(0.01)
    assert live_processes(m)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(m) == []


async def test_fork_bomb_is_contained(require_bwrap, sb_store, sb_settings, sb_environ, tmp_path):
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, pids_limit=64)
    # As root only a cgroup binds (the kernel does not enforce RLIMIT_NPROC for root): the rule
    # for every real part, so CI fails here rather than skip where containment matters most.
    need(backend.limits_in_use().startswith("cgroup") or os.getuid() != 0,
         f"a writable pids cgroup (running as root, where RLIMIT_NPROC does not bind; {backend.limits_in_use()})")
    from tests.sandbox.conftest import Maker

    sid = await Maker(sb_store, backend).sandbox()
    # Count how many processes a sandbox can have: at most the limit, not the 300 it asks for.
    assert await _forks(backend, sid) < 64
    # The real thing: contained, then killed whole by the timeout; the host can still fork.
    # The command's own shell execs sleep (no fork: a bomb that already fills the limit cannot
    # make the command end early with "Cannot fork", as it once did under two test workers).
    r = await backend.exec(sid, ["sh", "-c", "f() { f | f & }; f & exec sleep 100"], timeout=3)
    assert r.timed_out
    assert subprocess.run(["true"]).returncode == 0
    await asyncio.sleep(0)
    for _ in range(200):
        if not backend._cgroups.pids(sid):
            break
        await asyncio.sleep(0.05)
    assert backend._cgroups.pids(sid) == set()
    await backend.close()
    forget_cgroups(backend)


# How many processes a command can fork: it stops at the pids limit's EAGAIN only, never at
# another error (a fork the host's memory pressure failed is tried again), and says why it stopped.
_COUNT = ("import errno, os, time\nn = tries = 0\nwhile n < 300:\n    try:\n        pid = os.fork()\n"
          "    except OSError as e:\n        if e.errno == errno.EAGAIN:\n            break\n"
          "        tries += 1\n        assert tries < 1000, e\n        time.sleep(0.001)\n        continue\n"
          "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    n += 1\nprint(n, flush=True)\n")


async def _forks(backend, sid) -> int:
    r = await backend.exec(sid, ["python3", "-c", _COUNT], timeout=60)
    assert r.exit_code == 0, r.stderr
    # bwrap, the sandbox's pid 1 and python itself count too: all of the rest of the limit is usable.
    n = int(r.stdout)
    assert n >= backend.pids_limit - 8 or n >= 300, n
    return n


async def test_the_limit_holds_when_another_process_sweeps_while_it_is_set(require_bwrap, sb_store, sb_settings,
                                                                           sb_environ, monkeypatch):
    # Another lap-tui process's first use of cgroups sweeps empty sandbox cgroups: one just made
    # and not yet joined is empty. Swept between its mkdir and its limit writes, the command ran
    # with no cgroup at all (auto mode fell back to rlimits, which do not bind root): 300 forks.
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, pids_limit=64)
    need(backend._cgroups.available(), f"sandbox cgroups unavailable here: {backend.limits_in_use()}")
    from lap_tui.sandbox import limits
    from tests.sandbox.conftest import Maker

    sid = await Maker(sb_store, backend).sandbox()
    write, swept = limits._write, []

    def sweep_first(path, value, **kw):  # type: ignore[no-untyped-def]
        if not swept and sid in str(path):
            limits.Cgroups().available()  # its first use sweeps
            swept.append(not Path(path).parent.exists())
        return write(path, value, **kw)

    monkeypatch.setattr(limits, "_write", sweep_first)
    try:
        assert await _forks(backend, sid) < 64
        assert swept == [True]  # it did take our cgroup
    finally:
        await backend.close()
        forget_cgroups(backend)


@pytest.mark.parametrize("limits", ["auto", "rlimit"])
async def test_memory_hog_is_contained(require_bwrap, sb_store, sb_settings, sb_environ, limits):
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits=limits)
    from tests.sandbox.conftest import Maker

    sid = await Maker(sb_store, backend).sandbox(memory="128Mi")
    try:
        await _hog(backend, sid)
    finally:
        await backend.close()
        forget_cgroups(backend)


async def _hog(backend, sid):
    hog = "s = b'x' * (1024 * 2**20); print(len(s))"
    r = await backend.exec(sid, ["python3", "-c", hog], timeout=60)
    assert r.exit_code != 0 and not r.timed_out
    assert r.stdout == b""
    # the positive control: a small allocation works under the same limit
    r = await backend.exec(sid, ["python3", "-c", "s = b'x' * (16 * 2**20); print(len(s))"], timeout=60)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"16777216\n"


def rss() -> int:
    """This process's resident memory now (not ru_maxrss: a high-water mark an earlier test of
    the run may already have raised past anything this one does)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_a_gigabyte_of_output_is_capped(backend, make):
    sid = await make.sandbox()
    before = peak = rss()
    seen = 0

    def count(_name: str, chunk: bytes) -> None:
        nonlocal seen, peak
        seen += len(chunk)
        if seen % (16 * 2**20) < len(chunk):  # sampled every 16 MiB streamed
            peak = max(peak, rss())

    r = await backend.exec(sid, ["head", "-c", str(2**30), "/dev/zero"], max_output=2**20, on_output=count,
                           timeout=120)
    peak = max(peak, rss())
    assert r.exit_code == 0
    assert seen == 2**30  # every byte was streamed ...
    assert r.stdout_truncated and len(r.stdout) <= 2**20 + 100  # ... but only 1 MiB kept
    assert b"bytes omitted" in r.stdout
    assert peak - before < 100 * 2**20, f"memory grew by {(peak - before) >> 20} MiB while streaming"


async def test_fifty_sandboxes_at_once_all_finish_and_leave_nothing(backend, make):
    ids = [await make.sandbox() for _ in range(50)]
    m = marker()
    # each leaves a background process behind; the sandbox's end must take it along
    results = await asyncio.gather(*(backend.exec(s, ["sh", "-c", f"sleep {m} & echo $(hostname)"], timeout=120)
                                     for s in ids))
    assert [r.exit_code for r in results] == [0] * 50
    assert [r.stdout.decode().strip() for r in results] == ids
    assert await gone(m) == []
    assert all(not os.listdir(backend.root / s / "run") for s in ids)


async def test_sigkill_of_lap_tui_leaves_no_sandbox_process(require_bwrap, sb_environ):
    m = marker()
    env = dict(sb_environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.sandbox.holder", m], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        workspace = Path(proc.stdout.readline().decode().strip())
        for _ in range(1000):
            if (workspace / "started").exists() or proc.poll() is not None:
                break
            await asyncio.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert len(live_processes(m)) >= 4
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert await gone(m) == []
    finally:
        if proc.poll() is None:
            proc.kill()
