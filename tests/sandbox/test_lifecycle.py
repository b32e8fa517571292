"""State in the store, suspend/resume (by hand and when idle), restarts, watch(), naming, opt-in."""

from __future__ import annotations

import asyncio
import time

import pytest

from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import (SandboxError, SandboxPhase, SandboxSpec, SandboxUnavailable, context_sandbox_id,
                                    session_sandbox_id)
from lap_tui.domain.names import validate_label
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store
from tests.support.waiting import until


async def test_state_lives_in_the_store_and_on_the_session(backend, make, sb_store):
    sid = await make.sandbox()
    rec = await sb_store.get_sandbox(sid)
    assert rec.phase == "Running" and rec.ready and rec.created_at and rec.last_used_at
    session = await sb_store.get_session(rec.session_id)
    assert session.sandbox_ref == sid == session_sandbox_id(session.id)
    await backend.suspend(sid)
    rec = await sb_store.get_sandbox(sid)
    assert rec.phase == "Suspended" and not rec.ready and rec.suspended_at


async def test_workspace_survives_suspend_resume_and_restart(backend, make, sb_environ, sb_settings):
    sid = await make.sandbox()
    r = await backend.exec(sid, ["sh", "-c", "mkdir -p src && echo kept > src/file && echo ok"])
    assert r.stdout == b"ok\n"
    assert (await backend.suspend(sid)).phase is SandboxPhase.SUSPENDED
    assert (await backend.resume(sid)).phase is SandboxPhase.RUNNING
    assert (await backend.exec(sid, ["cat", "src/file"])).stdout == b"kept\n"
    await backend.suspend(sid)
    # a fresh lap-tui: new store connection, new backend, same data directory
    store2 = await open_store(sb_environ["LAP_DATABASE_URL"])
    try:
        b2 = LocalBackend(store2, sb_settings, environ=sb_environ)
        assert (await b2.status(sid)).phase is SandboxPhase.SUSPENDED
        r = await b2.exec(sid, ["cat", "/workspace/src/file"])  # next use resumes it
        assert r.stdout == b"kept\n"
        assert (await b2.status(sid)).phase is SandboxPhase.RUNNING
    finally:
        await store2.close()


async def test_suspend_stops_running_commands(backend, make):
    sid = await make.sandbox()
    task = asyncio.create_task(backend.exec(sid, ["sh", "-c", "touch go; sleep 1000"]))
    await until(lambda: (backend.workspace(sid) / "go").exists() or task.done(), "the command to start")
    await backend.suspend(sid)
    r = await asyncio.wait_for(task, 30)
    assert r.killed == "suspended" and r.exit_code == 137


async def test_idle_sandboxes_are_suspended_and_resumed_on_use(backend, make):
    idle = await make.sandbox(idle_suspend_seconds=60)
    never = await make.sandbox(idle_suspend_seconds=0)
    await backend.exec(idle, ["sh", "-c", "echo 1 > n"])
    assert await backend.suspend_idle() == []  # just used
    later = time.time() + 61
    assert await backend.suspend_idle(now=later) == [idle]
    assert (await backend.status(idle)).phase is SandboxPhase.SUSPENDED
    assert (await backend.status(never)).phase is SandboxPhase.RUNNING
    assert (await backend.exec(idle, ["cat", "n"])).stdout == b"1\n"
    assert (await backend.status(idle)).phase is SandboxPhase.RUNNING


async def test_context_scope_shares_within_a_team_only(backend, make, sb_store):
    a = await make.sandbox(scope="context", context="repo-x")
    b = await make.sandbox(scope="context", context="repo-x")
    other_team = await make.sandbox(scope="context", context="repo-x", team="blue")
    assert a == b == context_sandbox_id("default", "repo-x")
    assert other_team != a
    await backend.write_file(a, "shared", b"1")
    assert (await backend.exec(b, ["cat", "shared"])).stdout == b"1"
    assert (await backend.exec(other_team, ["sh", "-c", "cat shared"])).exit_code != 0
    with pytest.raises(SandboxError, match="never shared across teams"):
        await backend.ensure(SandboxSpec(id=a, team="blue"))


def test_ids_are_stable_dns_labels_and_never_collide_across_teams():
    assert session_sandbox_id("0123456789abcdef0123456789abcdef") == "s-0123456789ab"
    x = context_sandbox_id("a-b", "c")
    assert x != context_sandbox_id("a", "b-c")
    assert x == context_sandbox_id("a-b", "c")
    long = context_sandbox_id("t" * 63, "c" * 63)
    assert validate_label("sandbox", long) == long and len(long) <= 63


async def test_watch_reports_changes(backend, make):
    sid = await make.sandbox()
    events = []

    async def collect():
        async for ev in backend.watch(poll_interval=0.05):
            events.append((ev.type, ev.status.id, ev.status.phase))
            if ev.type == "deleted":
                return

    task = asyncio.create_task(collect())
    await until(lambda: events or task.done(), "the watch's first event")
    await backend.suspend(sid)
    await until(lambda: ("modified", sid, SandboxPhase.SUSPENDED) in events or task.done(),
                "the watch to report the suspension")
    await backend.delete(sid)
    await asyncio.wait_for(task, 30)
    assert events == [("added", sid, SandboxPhase.RUNNING), ("modified", sid, SandboxPhase.SUSPENDED),
                      ("deleted", sid, SandboxPhase.SUSPENDED)]


async def test_delete_removes_files_state_and_session_ref(backend, make, sb_store):
    sid = await make.sandbox()
    rec = await sb_store.get_sandbox(sid)
    await backend.write_file(sid, "f", b"x")
    await backend.delete(sid)
    assert await sb_store.get_sandbox(sid) is None
    assert not (backend.root / sid).exists()
    assert (await sb_store.get_session(rec.session_id)).sandbox_ref is None
    with pytest.raises(NotFound):
        await backend.exec(sid, ["true"])


async def test_missing_bwrap_refuses_with_the_install_command(sb_store, sb_settings, sb_environ, make):
    b = LocalBackend(sb_store, sb_settings, environ=sb_environ, bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as err:
        await b.ensure(SandboxSpec(id="s-000000000000", team="default"))
    assert "apt-get install bubblewrap" in str(err.value) and "LAP_ALLOW_UNISOLATED" in str(err.value)


async def test_unisolated_only_by_opt_in_and_flagged(sb_store, sb_settings, sb_environ, tmp_path):
    b = LocalBackend(sb_store, sb_settings, environ=sb_environ, bwrap="/nonexistent/bwrap",
                     allow_unisolated=True)
    st = await b.ensure(SandboxSpec(id="s-000000000001", team="default"))
    assert not st.isolated and "UNISOLATED" in st.warning
    r = await b.exec(st.id, ["sh", "-c", "pwd; echo $HOME"])
    assert r.stdout.decode().split() == [str(b.workspace(st.id))] * 2
    assert [s.warning for s in await b.list()] == [st.warning]


async def test_bad_input_gets_clear_errors(backend, make):
    sid = await make.sandbox()
    with pytest.raises(NotFound, match="no sandbox 's-nosuchthing0'"):
        await backend.exec("s-nosuchthing0", ["true"])
    with pytest.raises(SandboxError, match="'no-such-program' cannot be started") as err:
        await backend.exec(sid, ["no-such-program", "x"])
    assert err.value.exit_code == 127
    with pytest.raises(InvalidInput, match="working directory does not exist"):
        await backend.exec(sid, ["true"], cwd="/workspace/nope")
    with pytest.raises(InvalidInput, match="no command"):
        await backend.exec(sid, [])
    with pytest.raises(InvalidInput, match="list of arguments"):
        await backend.exec(sid, "echo hi")


async def test_a_malformed_command_is_refused_before_anything_runs(backend, make):
    """One string, an empty list, an empty program, a NUL byte: a clear error, nothing started
    (both backends check through sandbox.base.check_argv)."""
    sid = await make.sandbox()
    for argv, says in (("echo hi", "not one string"), (b"echo hi", "not one string"), ([], "no command"),
                       (["", "x"], "no command"), (["echo", "a\0b"], "NUL"), (["echo", 3], "NUL")):
        with pytest.raises(InvalidInput, match=says):
            await backend.exec(sid, argv)
    assert (await backend.exec(sid, ["echo", "still fine"])).stdout == b"still fine\n"
