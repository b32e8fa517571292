"""The store contract: every test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import Conflict, InvalidInput, NotFound, StoreError
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import Turn, TurnStatus
from lap_tui.domain.lease import LeaseLost
from lap_tui.domain.session import Session, SessionStatus
from lap_tui.store import open_store
from lap_tui.store.base import SandboxRecord
from lap_tui.store.sql import IDLE_POLL, LATEST
from tests.conftest import ROOT, make_session
from tests.support.waiting import until


def agent(name: str = "bot", team: str = "default", **kw) -> Agent:
    return Agent(id=new_id(), name=name, team=team, model="gpt-test", **kw)


async def test_agent_round_trip(store):
    sb = SandboxSettings(backend="local", cpu="500m", memory="2Gi", network=True, scope="context",
                         idle_suspend_seconds=60, env=("GITHUB_TOKEN",))
    created = await store.create_agent(agent(system_prompt="be brief", harness="codex", sandbox=sb))
    got = await store.get_agent("bot", "default")
    assert got == created
    assert got.sandbox.env == ("GITHUB_TOKEN",) and got.sandbox.network is True
    assert await store.get_agent_by_id(created.id) == created


async def test_agent_names_unique_per_team(store):
    await store.create_agent(agent("bot", "red"))
    await store.create_agent(agent("bot", "blue"))  # same name, other team: fine
    with pytest.raises(Conflict, match="already exists in team 'red'"):
        await store.create_agent(agent("bot", "red"))
    assert [(a.team, a.name) for a in await store.list_agents()] == [("blue", "bot"), ("red", "bot")]
    assert [a.team for a in await store.list_agents("red")] == ["red"]


async def test_invalid_agent_is_refused_before_writing(store):
    with pytest.raises(InvalidInput, match="may not contain"):
        await store.create_agent(agent("Bad_Name"))
    with pytest.raises(InvalidInput, match="memory"):
        await store.create_agent(agent(sandbox=SandboxSettings(memory="lots")))
    assert await store.list_agents() == []


async def test_update_and_rename_agent(store):
    a = await store.create_agent(agent("one"))
    await store.create_agent(agent("two"))
    b = await store.update_agent(replace(a, model="other", name="uno"))
    assert (await store.get_agent("uno", "default")).model == "other"
    assert b.updated_at >= a.updated_at
    with pytest.raises(Conflict):
        await store.update_agent(replace(b, name="two"))
    with pytest.raises(NotFound):
        await store.get_agent("one", "default")


async def test_delete_agent_cascades(store):
    s = await make_session(store)
    await store.append(s.id, "user.message", {"text": "hi"})
    assert await store.count_sessions(s.agent_id) == 1
    assert await store.delete_agent(s.agent_id) == 1
    with pytest.raises(NotFound):
        await store.get_session(s.id)
    assert await store.read_events(s.id) == []
    with pytest.raises(NotFound):
        await store.delete_agent(s.agent_id)


async def test_session_lookup_by_prefix(store):
    a = await store.create_agent(agent())
    s1 = await store.create_session(Session(id="abcd" + "0" * 28, agent_id=a.id, title="one"))
    await store.create_session(Session(id="abcd" + "1" * 28, agent_id=a.id))
    assert (await store.get_session("abcd0")).id == s1.id
    assert (await store.get_session(s1.id)).title == "one"
    with pytest.raises(InvalidInput, match="ambiguous"):
        await store.get_session("abcd")
    with pytest.raises(NotFound):
        await store.get_session("ffff")
    with pytest.raises(InvalidInput, match="not an id"):
        await store.get_session("x; drop table")


async def test_session_needs_an_existing_agent(store):
    with pytest.raises(NotFound, match="agent"):
        await store.create_session(Session(id=new_id(), agent_id=new_id()))


async def test_sessions_page_by_activity(store):
    a = await store.create_agent(agent())
    ids = []
    for i in range(7):
        s = await store.create_session(Session(id=new_id(), agent_id=a.id, title=str(i)))
        ids.append(s.id)
    await store.append(ids[2], "user.message", {"text": "bump"})  # most recent activity now
    first = await store.list_sessions(limit=3)
    assert first[0].id == ids[2]
    assert first[0].agent_name == "bot" and first[0].team == "default"
    seen = [s.id for s in first]
    cursor = (first[-1].updated_at, first[-1].id)
    while True:
        page = await store.list_sessions(limit=3, before=cursor)
        if not page:
            break
        seen += [s.id for s in page]
        cursor = (page[-1].updated_at, page[-1].id)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    other = await store.create_agent(agent("other"))
    await store.create_session(Session(id=new_id(), agent_id=other.id))
    assert len(await store.list_sessions(a.id, limit=100)) == 7


async def test_update_and_delete_session(store):
    s = await make_session(store)
    s2 = await store.update_session(s.id, title="renamed", sandbox_ref="s-123")
    assert (s2.title, s2.sandbox_ref) == ("renamed", "s-123")
    await store.set_session_status(s.id, SessionStatus.RUNNING)
    assert (await store.get_session(s.id)).status is SessionStatus.RUNNING
    await store.delete_session(s.id)
    with pytest.raises(NotFound):
        await store.delete_session(s.id)


async def test_append_assigns_consecutive_seqs(store):
    s = await make_session(store)
    evs = [await store.append(s.id, "model.delta", {"text": f"t{i}", "n": i}, turn_id="t1") for i in range(25)]
    assert [e.seq for e in evs] == list(range(1, 26))
    assert await store.last_seq(s.id) == 25
    back = await store.read_events(s.id)
    assert [e.to_dict() for e in back] == [e.to_dict() for e in evs]
    assert [e.seq for e in await store.read_events(s.id, after_seq=20)] == [21, 22, 23, 24, 25]
    assert [e.seq for e in await store.read_events(s.id, after_seq=5, limit=2)] == [6, 7]


async def test_unicode_and_nested_data_round_trip(store):
    s = await make_session(store)
    data = {"text": "héllo — 世界 🚀\n\x1b[31mred\x1b[0m", "nested": {"a": [1, 2.5, None, True]}, "quote": "'\";--"}
    ev = await store.append(s.id, "tool.finished", data, turn_id="t")
    assert (await store.read_events(s.id))[0].data == data == ev.data


async def test_concurrent_appends_in_one_process(store):
    s = await make_session(store)
    await asyncio.gather(*(store.append(s.id, "x", {"i": i}) for i in range(40)))
    evs = await store.read_events(s.id)
    assert [e.seq for e in evs] == list(range(1, 41))
    assert sorted(e.data["i"] for e in evs) == list(range(40))


async def test_last_events_and_paging_backwards(store):
    s = await make_session(store)
    for i in range(50):
        await store.append(s.id, "x", {"i": i})
    last = await store.last_events(s.id, 10)
    assert [e.seq for e in last] == list(range(41, 51))
    older = await store.last_events(s.id, 10, before_seq=last[0].seq)
    assert [e.seq for e in older] == list(range(31, 41))
    assert [e.seq for e in await store.last_events(s.id, 10, before_seq=4)] == [1, 2, 3]


async def test_events_of_one_turn(store):
    s = await make_session(store)
    await store.append(s.id, "a", turn_id="t1")
    await store.append(s.id, "b", turn_id="t2")
    await store.append(s.id, "c", turn_id="t1")
    assert [e.kind for e in await store.read_events(s.id, turn_id="t1")] == ["a", "c"]


async def test_append_to_missing_session(store):
    with pytest.raises(NotFound):
        await store.append(new_id(), "x")


async def test_turns_and_totals(store):
    s = await make_session(store)
    t = await store.create_turn(Turn(id=new_id(), session_id=s.id))
    assert (await store.get_turn(t.id)).status is TurnStatus.QUEUED
    await store.update_turn(t.id, status=TurnStatus.RUNNING, add_prompt_tokens=100, add_completion_tokens=20,
                            add_cost_usd=0.5)
    t2 = await store.update_turn(t.id, add_prompt_tokens=1, add_cost_usd=0.25)
    assert (t2.status, t2.prompt_tokens, t2.completion_tokens, t2.cost_usd) == (TurnStatus.RUNNING, 101, 20, 0.75)
    sess = await store.get_session(s.id)
    assert (sess.prompt_tokens, sess.completion_tokens, sess.cost_usd) == (101, 20, 0.75)
    await store.update_turn(t.id, status=TurnStatus.FAILED, error="gateway down")
    assert [x.id for x in await store.find_turns((TurnStatus.FAILED,))] == [t.id]
    assert await store.find_turns((TurnStatus.QUEUED, TurnStatus.RUNNING)) == []
    assert [x.id for x in await store.list_turns(s.id)] == [t.id]
    with pytest.raises(NotFound):
        await store.update_turn(new_id(), status=TurnStatus.RUNNING)


async def test_lease_has_one_holder(store):
    s = await make_session(store)
    assert await store.acquire_lease(s.id, "a", 10, now=1000.0)
    assert not await store.acquire_lease(s.id, "b", 10, now=1005.0)  # still a's
    assert await store.acquire_lease(s.id, "a", 10, now=1005.0)  # re-entrant for its holder
    assert await store.renew_lease(s.id, "a", 10, now=1010.0)
    assert not await store.renew_lease(s.id, "b", 10, now=1010.0)
    lease = await store.get_lease(s.id)
    assert (lease.holder, lease.acquired_at, lease.expires_at) == ("a", 1000.0, 1020.0)
    assert await store.acquire_lease(s.id, "b", 10, now=1021.0)  # expired: taken over
    assert not await store.renew_lease(s.id, "a", 10, now=1022.0)  # a lost it
    assert (await store.get_lease(s.id)).acquired_at == 1021.0
    await store.release_lease(s.id, "a")  # not a's: no effect
    assert (await store.get_lease(s.id)).holder == "b"
    await store.release_lease(s.id, "b")
    assert await store.get_lease(s.id) is None


async def test_append_fenced_by_lease(store):
    s = await make_session(store)
    assert await store.acquire_lease(s.id, "driver-1", 30)
    await store.append(s.id, "x", holder="driver-1")
    with pytest.raises(LeaseLost):
        await store.append(s.id, "x", holder="driver-2")
    assert await store.last_seq(s.id) == 1


async def test_sandbox_records(store):
    rec = SandboxRecord(id="s-abc", backend="local", team="default", phase="Running", session_id="x",
                        ready=True, data={"workspace": "/w"})
    await store.put_sandbox(rec)
    got = await store.get_sandbox("s-abc")
    assert (got.phase, got.ready, got.data) == ("Running", True, {"workspace": "/w"})
    created = got.created_at
    await store.put_sandbox(replace(got, phase="Suspended", ready=False))
    got2 = await store.get_sandbox("s-abc")
    assert (got2.phase, got2.ready, got2.created_at) == ("Suspended", False, created)
    assert [r.id for r in await store.list_sandboxes(backend="local")] == ["s-abc"]
    assert await store.list_sandboxes(backend="kubernetes") == []
    await store.delete_sandbox("s-abc")
    assert await store.get_sandbox("s-abc") is None


async def test_touch_sandbox_sets_last_used_alone_and_never_makes_a_row(store, store_url):
    # Two connections, as two lap-tui processes: one read the row, the other deletes it, then
    # the first records a use. A whole-row write (put_sandbox) brought the sandbox back.
    other = await open_store(store_url)
    try:
        rec = SandboxRecord(id="s-touch", backend="local", team="default", phase="Running", ready=True,
                            last_used_at="2026-01-01T00:00:00.000000Z", data={"workspace": "/w"})
        await store.put_sandbox(rec)
        seen = await store.get_sandbox("s-touch")
        await other.update_sandbox("s-touch", phase_was="Running", phase="Suspended", ready=False)
        assert await store.touch_sandbox("s-touch", "2026-01-02T00:00:00.000000Z")
        got = await other.get_sandbox("s-touch")
        assert (got.phase, got.ready, got.last_used_at) == ("Suspended", False, "2026-01-02T00:00:00.000000Z")
        assert got.data == seen.data
        assert not await store.touch_sandbox("s-touch", "2026-01-01T12:00:00.000000Z")  # never backwards
        assert (await other.get_sandbox("s-touch")).last_used_at == "2026-01-02T00:00:00.000000Z"
        await other.delete_sandbox("s-touch")
        assert not await store.touch_sandbox("s-touch", "2026-01-03T00:00:00.000000Z")
        assert await other.get_sandbox("s-touch") is None
        assert not await store.touch_sandbox("s-never", "2026-01-03T00:00:00.000000Z")
        assert await store.get_sandbox("s-never") is None
    finally:
        await other.close()


async def test_update_sandbox_is_compare_and_set_on_the_phase(store, store_url):
    other = await open_store(store_url)
    try:
        await store.put_sandbox(SandboxRecord(id="s-cas", backend="local", team="default", phase="Suspended",
                                              ready=False, suspended_at="2026-01-01T00:00:00.000000Z",
                                              data={"workspace": "/w"}))
        stale = await store.get_sandbox("s-cas")
        # The other process resumes it and then suspends it again...
        assert (await other.update_sandbox("s-cas", phase_was="Suspended", phase="Running", ready=True,
                                           suspended_at=None)).phase == "Running"
        # ...so a write over the stale read (it was Suspended) changes nothing.
        got = await store.update_sandbox("s-cas", phase_was="Suspended", phase="Failed", message="stale")
        assert got is None
        now = await store.get_sandbox("s-cas")
        assert (now.phase, now.ready, now.suspended_at, now.message) == ("Running", True, None, stale.message)
        # Over the phase as it is, it applies, and leaves the other columns as they were.
        got = await store.update_sandbox("s-cas", phase_was="Running", phase="Suspended", ready=False,
                                         suspended_at="2026-01-05T00:00:00.000000Z")
        assert (got.phase, got.ready, got.suspended_at, got.data, got.created_at) == (
            "Suspended", False, "2026-01-05T00:00:00.000000Z", {"workspace": "/w"}, stale.created_at)
        assert got == await other.get_sandbox("s-cas")
        # Deleted by the other: nothing is made again.
        await other.delete_sandbox("s-cas")
        assert await store.update_sandbox("s-cas", phase_was="Suspended", phase="Running") is None
        assert await other.get_sandbox("s-cas") is None
        with pytest.raises(ValueError):
            await store.update_sandbox("s-cas", phase_was="Running", id="s-other")
    finally:
        await other.close()


async def test_follow_sees_new_events(store):
    s = await make_session(store)
    await store.append(s.id, "old")
    got = []

    async def reader():
        async for ev in store.follow(s.id, after_seq=1, poll_interval=0.02):
            got.append(ev.kind)
            if len(got) == 3:
                return

    task = asyncio.create_task(reader())
    for k in ("a", "b", "c"):
        await store.append(s.id, k)
    await asyncio.wait_for(task, 60)
    assert got == ["a", "b", "c"]


async def _next_kind(follower) -> str:
    return (await asyncio.wait_for(follower.__anext__(), 30)).kind  # within the tests' 60 s poll


def count_empty_polls(store) -> list[int]:
    """Spies on the reads a follower polls with (SQLite: the session's counter; Postgres: the
    events): the returned list's one item counts the reads that found nothing new. Once one
    has returned, the follower is waiting (it cleared its wake-up before reading), so what is
    appended next can only reach it through the wake-up or a later poll."""
    empty = [0]
    last_seq, read_events = store.last_seq, store.read_events

    async def spy_last_seq(session_id, *a, **kw):
        n = await last_seq(session_id, *a, **kw)
        empty[0] += 1  # the follower compares it with what it has seen; the tests append nothing meanwhile
        return n

    async def spy_read_events(session_id, *a, **kw):
        evs = await read_events(session_id, *a, **kw)
        empty[0] += not evs
        return evs

    store.last_seq, store.read_events = spy_last_seq, spy_read_events
    return empty


async def test_follow_wakes_at_once_for_this_process_appends(store):
    # A poll of a minute: only the wake-up on this process's own append can deliver in time.
    s = await make_session(store)
    empty = count_empty_polls(store)
    follower = store.follow(s.id, after_seq=0, poll_interval=60)
    first = asyncio.create_task(_next_kind(follower))
    await until(lambda: empty[0] >= 1 or first.done(), "the follower's first read")
    await store.append(s.id, "mine")
    assert await first == "mine"
    await follower.aclose()


async def test_follow_sees_another_process_appends_after_idling(store, store_url):
    # The poll slows down while nothing happens; another process's append still arrives.
    s = await make_session(store)
    empty = count_empty_polls(store)
    follower = store.follow(s.id, after_seq=0, poll_interval=0.02)
    # SQLite backs off by 1.5x a poll from 0.02 s to IDLE_POLL; Postgres listens and polls at 1 s.
    idle = 2 if store_url.startswith("postgres") else math.ceil(math.log(IDLE_POLL / 0.02, 1.5)) + 2
    try:
        first = asyncio.create_task(_next_kind(follower))
        await until(lambda: empty[0] >= idle or first.done(), f"{idle} empty polls (the follower idling)")
        # A real second process (tests/support/journal_worker.py) appends.
        other = subprocess.run([sys.executable, "-m", "tests.support.journal_worker", "append", store_url, s.id,
                                "1", "theirs"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert other.returncode == 0, other.stderr
        assert await first == "test.append"
    finally:
        await follower.aclose()


async def test_migrate_is_idempotent_and_recorded(store_url):
    s = await open_store(store_url)
    try:
        report = await s.migrate()
        assert report.applied == () and report.after == LATEST
        assert await s.check_schema() == LATEST
    finally:
        await s.close()


async def test_newer_schema_is_refused(store_url):
    s = await open_store(store_url)
    async with s._write() as db:
        await db.execute("INSERT INTO lap_schema (version, name, applied_at) VALUES (?, ?, ?)", LATEST + 1, "future",
                         "2099-01-01T00:00:00.000000Z")
    await s.close()
    with pytest.raises(StoreError, match="newer than this lap-tui"):
        await open_store(store_url)
