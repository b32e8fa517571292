"""Turns from scripts: `lap-tui send` and `lap-tui worker --once`, real processes, no terminal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.engine.test_turns import bash
from tests.support.scripted_gateway import error, stream


def cli(env, *args):
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def setup_session(env) -> str:
    cli(env, "agents", "create", "bot", "--model", "gpt-test")
    return cli(env, "sessions", "new", "bot").strip()


async def test_send_then_worker_once(engine_env, gw, tmp_path):
    env = {**os.environ, **engine_env}
    sid = setup_session(env)
    turn_id = cli(env, "send", sid, "make a file").strip()
    assert [json.loads(x)["kind"] for x in cli(env, "journal", sid, "--json").splitlines()] == \
        ["turn.queued", "user.message"]
    gw.push(stream(["writing"], tool_calls=[bash("c1", "echo made > made.txt && cat made.txt")],
                   usage={"prompt_tokens": 7, "completion_tokens": 3}),
            stream(["Done: made.txt exists."], usage={"prompt_tokens": 9, "completion_tokens": 4}))
    r = run_cli("worker", "--once", "--poll", "0.05", env=env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in cli(env, "journal", sid, "--json").splitlines()]
    assert events[-1]["kind"] == "turn.completed" and events[-1]["turn_id"] == turn_id
    tool = next(e for e in events if e["kind"] == "tool.finished")
    assert tool["data"]["output"] == "made\n"
    shown = json.loads(cli(env, "sessions", "show", sid, "--json"))
    assert (shown["prompt_tokens"], shown["completion_tokens"], shown["status"]) == (16, 7, "idle")
    # Nothing left to do: a second worker run exits at once.
    assert run_cli("worker", "--once", env=env).returncode == 0


async def test_send_wait_prints_the_reply(engine_env, gw):
    env = {**os.environ, **engine_env}
    sid = setup_session(env)
    gw.push(stream([], tool_calls=[bash("c1", "pwd")]), stream(["You are in ", "/workspace."]))
    out = json.loads(cli(env, "send", sid, "where am I?", "--wait", "--json"))
    assert out["status"] == "completed" and out["reply"] == "You are in /workspace."


async def test_send_wait_reports_a_failed_turn(engine_env, gw):
    env = {**os.environ, **engine_env}
    sid = setup_session(env)
    gw.push(error(401))
    r = run_cli("send", sid, "hi", "--wait", env=env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("lap-tui: the turn failed: the gateway rejected the key")
    assert "Traceback" not in r.stderr
    shown = json.loads(cli(env, "sessions", "show", sid, "--json"))
    assert shown["status"] == "failed"


async def test_two_workers_never_run_the_same_turn(engine_env, gw):
    import subprocess
    import sys

    env = {**os.environ, **engine_env}
    cli(env, "agents", "create", "bot", "--model", "gpt-test")
    sessions = [cli(env, "sessions", "new", "bot").strip() for _ in range(6)]
    for sid in sessions:
        for n in range(2):
            cli(env, "send", sid, f"message {n}")
    gw.default = {"type": "echo", "delay": 0.01}
    workers = [subprocess.Popen([sys.executable, "-m", "lap_tui", "worker", "--once", "--poll", "0.05"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    driven = 0
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        driven += int(err.rsplit("drove ", 1)[1].split()[0])
    assert driven == len(sessions)  # each session driven by exactly one of the two
    for sid in sessions:
        events = [json.loads(x) for x in cli(env, "journal", sid, "--json").splitlines()]
        for turn_id in {e["turn_id"] for e in events}:
            kinds = [e["kind"] for e in events if e["turn_id"] == turn_id]
            assert kinds.count("turn.started") == 1 and kinds.count("model.requested") == 1, kinds
            assert kinds[-1] == "turn.completed", kinds
    assert len(gw.chat_requests) == 12  # each turn's model call was made exactly once


async def test_send_wait_takes_the_journal_over_a_lagging_turn_row(engine_env, gw):
    """Another live process drives the turn; it has journaled the turn's end but not yet updated
    the turn's row (the journal is written first). `send --wait` reports what the journal says,
    whenever the end lands relative to its own reads."""
    from lap_tui.config import load_settings
    from lap_tui.engine.holder import new_holder
    from lap_tui.store import open_store

    env = {**os.environ, **engine_env}
    sid = setup_session(env)
    store = await open_store(load_settings(env, cwd=Path(engine_env["XDG_CONFIG_HOME"]).parent).database_url)
    holder = new_holder()  # this test process: alive, so `send` leaves the session to it
    try:
        assert await store.acquire_lease(sid, holder, ttl=120)
        proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "send", sid, "hi", "--wait", "--json"],
                                env=env, cwd=os.path.dirname(engine_env["XDG_CONFIG_HOME"]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(600):
            turns = await store.list_turns(sid)
            if turns:
                break
            await asyncio.sleep(0.05)
        assert turns, "send queued no turn"
        await store.append(sid, "turn.failed", {"reason": "the model broke off"}, turn_id=turns[0].id,
                           holder=holder)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        await store.close()
    assert proc.returncode == 1, err
    got = json.loads(out)
    assert (got["status"], got["error"]) == ("failed", "the model broke off")
    assert err.strip().endswith("the turn failed: the model broke off")
