"""Security issue 15.2: sandbox ids read from the store never become host paths, cgroups or kill targets.

A shared store is written by other processes (a teammate's, a bug's): each test plants a row
the way such a process could, then drives the backend the way lap-tui does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from lap_tui.domain.clock import now_iso
from lap_tui.domain.sandbox import SandboxError, SandboxSpec
from lap_tui.sandbox.limits import CGROUP_ROOT
from lap_tui.store import open_store
from lap_tui.store.base import SandboxRecord
from tests.conftest import need, run_cli

LONG_AGO = "2000-01-01T00:00:00.000000Z"


def planted(sid: str, **kw) -> SandboxRecord:
    data = {"settings": {"idle_suspend_seconds": 1}, "isolation": "bwrap", "workspace": "/nowhere"}
    return SandboxRecord(id=sid, backend="local", team="default", phase="Running", ready=True,
                         created_at=LONG_AGO, last_used_at=LONG_AGO, data=data, **kw)


def victim_dir(base: Path) -> Path:
    d = base / "victim"
    (d / "workspace").mkdir(parents=True)
    (d / "precious.txt").write_text("keep me\n")
    (d / "workspace" / "host-secret").write_text("host only\n")
    return d


@pytest.mark.parametrize("bad", ["/sys/fs/cgroup/pids/x", "../x", "a/../../x", ".", "..", "-rf", "A", "a" * 64,
                                 "a\nb", "", "x/", None, 5])
def test_only_names_lap_tui_makes_pass(bad):
    from lap_tui.domain.sandbox import check_sandbox_id

    with pytest.raises(SandboxError):
        check_sandbox_id(bad)
    assert check_sandbox_id("s-0123456789ab") == "s-0123456789ab"


async def test_delete_of_a_planted_row_removes_no_host_directory(backend, sb_store, tmp_path):
    victim = victim_dir(tmp_path)
    backend.root.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(victim, backend.root)  # ../../victim: the same directory, another spelling
    for sid in (str(victim), relative, str(victim) + "/"):
        await sb_store.put_sandbox(planted(sid))
        await backend.delete(sid)  # the row goes: nothing else can be done with it
        assert await sb_store.get_sandbox(sid) is None
        assert (victim / "precious.txt").read_text() == "keep me\n", sid


async def test_a_planted_row_gets_no_directory_and_runs_nothing(backend, sb_store, tmp_path):
    victim = victim_dir(tmp_path)
    backend.root.mkdir(parents=True, exist_ok=True)
    sid = os.path.relpath(victim, backend.root)
    await sb_store.put_sandbox(planted(sid))
    # exec binds the "workspace" of the id: the old code mounted the host's victim/workspace.
    with pytest.raises(SandboxError, match="refusing sandbox id"):
        await backend.exec(sid, ["cat", "/workspace/host-secret"])
    for call in (backend.read_file(sid, "host-secret"), backend.write_file(sid, "x", b"x"),
                 backend.list_dir(sid), backend.logs(sid), backend.suspend(sid), backend.resume(sid)):
        with pytest.raises(SandboxError, match="refusing sandbox id"):
            await call
    assert sorted(os.listdir(victim)) == ["precious.txt", "workspace"]
    assert os.listdir(victim / "workspace") == ["host-secret"]
    # ensure builds ids from store rows (a session id, a context key): refused before any mkdir
    with pytest.raises(SandboxError):
        await backend.ensure(SandboxSpec(id="s-../../../made-here", team="default"))
    assert not (backend.root.parent / "made-here").exists() and not Path("/made-here").exists()


async def test_a_sandbox_directory_that_leads_outside_is_refused(backend, make, tmp_path):
    sid = await make.sandbox()
    victim = victim_dir(tmp_path)
    d = backend.root / sid
    os.rename(d, tmp_path / "moved")
    os.symlink(victim, d)  # the final path resolves outside the data directory
    with pytest.raises(SandboxError, match="leads outside"):
        await backend.exec(sid, ["cat", "/workspace/host-secret"])
    with pytest.raises(SandboxError, match="leads outside"):
        await backend.read_file(sid, "host-secret")
    os.unlink(d)
    os.rename(tmp_path / "moved", d)


@pytest.fixture
def victim_cgroup():
    """A cgroup outside lap-tui's, with a live process in it."""
    v2 = (CGROUP_ROOT / "cgroup.controllers").is_file()
    parent = CGROUP_ROOT if v2 else CGROUP_ROOT / "pids"
    group = parent / f"lap-test-victim-{secrets.token_hex(4)}"
    try:
        group.mkdir()
    except OSError as exc:
        need(False, f"cannot create a cgroup to attack ({exc})")
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        (group / "cgroup.procs").write_text(str(proc.pid))
        yield group, proc
    finally:
        proc.kill()
        proc.wait()
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


async def test_idle_suspend_of_a_planted_cgroup_id_kills_nothing(backend, sb_store, victim_cgroup):
    group, proc = victim_cgroup
    need(backend._cgroups.available(), f"sandbox cgroups unavailable: {backend.limits_in_use()}")
    await sb_store.put_sandbox(planted(str(group)))
    try:
        done = await backend.suspend_idle(now=time.time())
    except Exception as exc:  # noqa: BLE001 - the old code killed, then failed to log in the cgroup
        done = exc
    assert proc.poll() is None, "idle suspend killed a process outside every sandbox"
    assert done == []
    with pytest.raises(SandboxError):
        await backend.suspend(str(group))
    with pytest.raises(SandboxError):
        backend._cgroups.pids(str(group))
    assert proc.poll() is None, "a process outside every sandbox was killed"
    assert (await sb_store.get_sandbox(str(group))).phase == "Running"
    await backend.delete(str(group))  # the row only
    assert proc.poll() is None and group.is_dir()


def test_cli_delete_of_a_planted_row_keeps_the_host_directory(require_bwrap, cli_env, tmp_path):
    import asyncio

    victim = victim_dir(tmp_path)
    env = dict(cli_env, LAP_DATABASE_URL=f"sqlite://{tmp_path / 'shared.db'}")

    async def plant() -> None:
        store = await open_store(env["LAP_DATABASE_URL"])
        try:
            await store.put_sandbox(planted(str(victim), message=now_iso()))
        finally:
            await store.close()

    asyncio.run(plant())
    r = run_cli("sandboxes", "delete", str(victim), env=env)
    assert r.returncode == 0, r.stderr
    assert (victim / "precious.txt").read_text() == "keep me\n"
    r = run_cli("sandboxes", "exec", str(victim), "--", "true", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr
