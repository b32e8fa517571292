"""`lap-tui worker` as a Deployment runs it: health probes, and SIGTERM handing turns back.

Real processes on a real PostgreSQL server, the scripted gateway over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from lap_tui.config import load_settings
from lap_tui.domain.journal import TurnStatus
from lap_tui.engine.services import build_engine
from lap_tui.store import open_store
from tests.conftest import make_session
from tests.store.test_pg_restart import own_pg  # noqa: F401 - fixture
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call
from tests.support.waiting import until
from tests.platform.workers import WorkerProc, isolated_env, probe, worker_env

FINAL = stream(["all ", "done"], usage={"prompt_tokens": 5, "completion_tokens": 2})


async def queue_turn(store, env: dict[str, str], tmp_path: Path, text: str = "go") -> tuple[str, str]:
    s = await make_session(store)
    engine = build_engine(load_settings(env, cwd=tmp_path), store)
    try:
        return s.id, await engine.queue(s.id, text)
    finally:
        await engine.close()


async def kinds(store, session_id: str) -> list[str]:
    return [e.kind for e in await store.read_events(session_id)]


async def exited(w: WorkerProc) -> int:
    return await until(lambda: w.proc.poll() is not None and (w.proc.returncode, ), f"{w.cmd} to exit")


async def test_health_probes_follow_the_loop_and_the_store(own_pg, tmp_path):  # noqa: F811
    url = own_pg.createdb("health")
    store = await open_store(url)
    await store.close()
    w = WorkerProc(worker_env(isolated_env(tmp_path), url, "http://127.0.0.1:9"), tmp_path / "w",
                   "--health-port", "0", "--health-host", "127.0.0.1", "--poll", "0.05")
    try:
        base = await until(w.health_url, "the health port in the log")
        assert await until(lambda: probe(base + "/readyz")[0] == 200, "ready")
        assert probe(base + "/livez") == (200, "the worker loop runs\n")
        assert probe(base + "/healthz")[0] == 200
        assert probe(base + "/nothing")[0] == 404
        # The database goes away: not ready (the store is unreachable), still alive (the loop runs).
        await asyncio.to_thread(own_pg.stop)
        await until(lambda: probe(base + "/readyz")[0] == 503, "not ready while the database is down")
        assert "the store is unreachable" in probe(base + "/readyz")[1]
        assert probe(base + "/livez")[0] == 200
        await asyncio.to_thread(own_pg.start_again)
        await until(lambda: probe(base + "/readyz")[0] == 200, "ready again once the database is back")
        os.kill(w.pid, signal.SIGTERM)
        assert await exited(w) == (0, ), w.log()
    finally:
        w.stop()


async def test_sigterm_finishes_the_step_and_hands_the_turn_back(pg_url, tmp_path, require_bwrap):
    """The model call under way finishes; its tool call, a new step, is left to the next driver."""
    held = tmp_path / "release-the-model"
    with ScriptedGateway(models=["test-model"]) as gw:
        gw.push(stream(["running it"], wait_file=str(held), wait_max=120, tool_calls=[
                    tool_call("c1", "bash", json.dumps({"command": "echo ran >> effects.log"}))]),
                FINAL)
        env = worker_env(isolated_env(tmp_path), pg_url, gw.base_url)
        store = await open_store(pg_url)
        try:
            sid, turn_id = await queue_turn(store, env, tmp_path)
            w = WorkerProc(env, tmp_path / "w1", "--poll", "0.05", "--grace", "120")
            try:
                await until(lambda: _has(store, sid, "model.requested"), "the model call to start")
                os.kill(w.pid, signal.SIGTERM)
                await until(lambda: "stopping:" in w.log(), "the worker to start draining")
                held.touch()  # the model answers only now, while the worker drains
                assert await exited(w) == (0, ), w.log()
            finally:
                w.stop()
            ks = await kinds(store, sid)
            assert "model.message" in ks, ks  # the step under way finished
            assert "tool.started" not in ks and not {"turn.completed", "turn.failed", "turn.cancelled"} & set(ks), ks
            assert not (await store.get_turn(turn_id)).status.finished
            assert await store.get_lease(sid) is None  # released, not left to expire
            assert [r["status"] for r in w.reports()] == ["running"]

            w2 = WorkerProc(env, tmp_path / "w2", "--once", "--poll", "0.05")
            try:
                assert await exited(w2) == (0, ), w2.log()
            finally:
                w2.stop()
            assert (await store.get_turn(turn_id)).status is TurnStatus.COMPLETED
            c = Counter(await kinds(store, sid))
            assert (c["turn.started"], c["turn.resumed"], c["model.message"], c["tool.started"],
                    c["tool.finished"], c["turn.completed"]) == (1, 1, 2, 1, 1, 1), c
        finally:
            held.touch()
            await store.close()


async def test_sigterm_cuts_short_a_step_that_outlasts_the_grace(pg_url, tmp_path):
    """A model call that never answers: after --grace the worker exits 0 anyway, the turn is
    handed back unfinished (not cancelled) and the next worker completes it."""
    held = tmp_path / "never"
    with ScriptedGateway(models=["test-model"]) as gw:
        gw.push(stream(["late"], wait_file=str(held), wait_max=300), FINAL)
        env = worker_env(isolated_env(tmp_path), pg_url, gw.base_url)
        store = await open_store(pg_url)
        try:
            sid, turn_id = await queue_turn(store, env, tmp_path)
            w = WorkerProc(env, tmp_path / "w1", "--poll", "0.05", "--grace", "1")
            try:
                await until(lambda: _has(store, sid, "model.requested"), "the model call to start")
                os.kill(w.pid, signal.SIGTERM)
                assert await exited(w) == (0, ), w.log()
            finally:
                w.stop()
            assert "grace period over" in w.log()
            ks = await kinds(store, sid)
            assert not {"model.message", "turn.cancelled", "turn.failed", "turn.completed"} & set(ks), ks
            assert not (await store.get_turn(turn_id)).status.finished
            assert await store.get_lease(sid) is None

            w2 = WorkerProc(env, tmp_path / "w2", "--once", "--poll", "0.05")
            try:
                assert await exited(w2) == (0, ), w2.log()
            finally:
                w2.stop()
            assert (await store.get_turn(turn_id)).status is TurnStatus.COMPLETED
            c = Counter(await kinds(store, sid))
            assert (c["turn.started"], c["turn.resumed"], c["model.message"], c["turn.completed"],
                    c["turn.cancelled"]) == (1, 1, 1, 1, 0), c
        finally:
            held.touch()
            await store.close()


async def _has(store, session_id: str, kind: str) -> bool:
    return kind in await kinds(store, session_id)
