"""The database restarts in the middle of a turn: the turn pauses, then resumes from its last
checkpoint by itself; nothing journaled is lost and no tool call runs twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from lap_tui.domain.errors import NotFound
from lap_tui.domain.journal import TurnStatus
from lap_tui.engine.engine import EngineOptions
from lap_tui.engine.services import build_engine
from lap_tui.engine.worker import run_worker
from lap_tui.store import open_store
from tests.conftest import make_session
from tests.store.test_pg_restart import own_pg  # noqa: F401 - fixture
from tests.support.scripted_gateway import stream, tool_call


async def test_turn_survives_a_postgres_restart(own_pg, settings, gw):  # noqa: F811
    store = await open_store(own_pg.createdb("restart"))
    engine = build_engine(settings, store, options=EngineOptions(lease_ttl=5.0))
    worker = None
    try:
        s = await make_session(store)
        gw.push(stream([], tool_calls=[tool_call("c1", "bash", json.dumps(
                    {"command": "echo ran >> effects.log; sleep 1.5"}))]),
                stream(["finished"]))
        turn_id = await engine.queue(s.id, "go")
        worker = asyncio.create_task(run_worker(engine, poll_interval=0.05))
        # Wait until the command has really run its first line (tool.started is journaled before
        # it runs), so the outage always cuts a command that already had its effect.
        for _ in range(3000):
            session = await store.get_session(s.id)
            if session.sandbox_ref:
                try:
                    if await engine.sandboxes.read_file(session.sandbox_ref, "effects.log"):
                        break
                except NotFound:
                    pass  # not written yet
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the tool never started its command within 60 s")
        # Down while the command runs and when it finishes, longer than an append's own retries
        # (~1.5 s, store/postgres.py): its result cannot be journaled and the turn pauses.
        await asyncio.to_thread(own_pg.stop)
        await asyncio.sleep(5.0)
        await asyncio.to_thread(own_pg.start_again)
        for _ in range(600):
            try:
                if (await store.get_turn(turn_id)).status.finished:
                    break
            except Exception:
                pass  # the server may still be coming back
            await asyncio.sleep(0.05)
        assert not worker.done(), worker.exception()  # the worker must ride out the outage
        turn = await store.get_turn(turn_id)
        assert turn.status is TurnStatus.COMPLETED, turn.error
        events = await store.read_events(s.id)
        kinds = [e.kind for e in events]
        # Paused, then resumed; on a machine so slow that the command ended after the server came
        # back, the append's retries journaled its result instead. Either way: once.
        assert ("turn.resumed" in kinds and "tool.interrupted" in kinds) or "tool.finished" in kinds
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        outcomes = Counter(e.data["tool_call_id"] for e in events if e.kind in ("tool.finished", "tool.interrupted"))
        assert outcomes == Counter({"c1": 1})
        session = await store.get_session(s.id)
        log = (await engine.sandboxes.read_file(session.sandbox_ref, "effects.log")).decode().split()
        assert log == ["ran"]
    finally:
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        await engine.close()
        await store.close()
