"""opencode, the real CLI (npm opencode-ai, pinned), in a bubblewrap sandbox through the relay."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lap_tui.store import open_store
from tests.harness.conftest import MASTER_KEY, cli, need_cli
from tests.support.scripted_gateway import stream, tool_call


@pytest.fixture(autouse=True)
def _opencode():
    need_cli("opencode")


def bash(id_: str, command: str):
    return tool_call(id_, "bash", json.dumps({"command": command, "description": "run it"}))


def new_session(env) -> str:
    cli(env, "agents", "create", "oc", "--model", "gpt-test", "--harness", "opencode")
    return cli(env, "sessions", "new", "oc").strip()


def db_url(env) -> str:
    return f"sqlite://{Path(env['XDG_DATA_HOME']) / 'lap-tui' / 'lap.db'}"


def workspace(env, session_id: str) -> Path:
    (d,) = (Path(env["XDG_DATA_HOME"]) / "lap-tui" / "sandboxes").glob(f"s-{session_id[:12]}*")
    return d / "workspace"


async def events_of(env, session_id: str):
    store = await open_store(db_url(env))
    try:
        return await store.read_events(session_id), await store.list_turns(session_id), \
            await store.get_session(session_id)
    finally:
        await store.close()


def send(env, session_id: str, text: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lap_tui", "send", session_id, text, "--wait"], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=env["XDG_STATE_HOME"].rsplit("/", 1)[0])


async def test_a_tool_using_turn_then_a_resumed_one(hx_env, gw):
    env = hx_env
    sid = new_session(env)
    gw.push(stream([], tool_calls=[bash("call_w", "printf 'hi from opencode\\n' > hello.txt")],
                   usage={"prompt_tokens": 11, "completion_tokens": 7}, cost=0.001),
            stream(["Wrote ", "hello.txt."], usage={"prompt_tokens": 23, "completion_tokens": 3}, cost=0.002))
    r = send(env, sid, "write hello.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    ws = workspace(env, sid)
    assert (ws / "hello.txt").read_text() == "hi from opencode\n"  # the CLI's tool ran in the sandbox

    events, turns, session = await events_of(env, sid)
    kinds = [e.kind for e in events]
    assert kinds[-1] == "turn.completed", kinds
    started = [e.data for e in events if e.kind == "tool.started"]
    finished = [e.data for e in events if e.kind == "tool.finished"]
    assert [(d["tool_call_id"], d["name"]) for d in started] == [("call_w", "bash")]
    assert "hello.txt" in started[0]["arguments"]
    assert [d["tool_call_id"] for d in finished] == ["call_w"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["Wrote hello.txt."]
    cli_sid = session.harness_session_id
    assert cli_sid and cli_sid.startswith("ses_")
    # Tokens and cost reach the turn, counted by the relay from the gateway's answers.
    (t1,) = turns
    assert (t1.status.value, t1.prompt_tokens, t1.completion_tokens) == ("completed", 34, 10)
    assert abs(t1.cost_usd - 0.003) < 1e-9
    done = [e for e in events if e.kind == "turn.completed"][0].data
    assert (done["prompt_tokens"], done["completion_tokens"]) == (34, 10)
    # The gateway saw the master key; the CLI only ever had its session token.
    assert all(r.headers.get("authorization") == f"Bearer {MASTER_KEY}" for r in gw.chat_requests)

    # Turn 2 from a new process resumes the same opencode session: turn 1 is in its history.
    gw.push(stream(["I remember."], usage={"prompt_tokens": 40, "completion_tokens": 2}))
    r = send(env, sid, "what did you write?")
    assert r.returncode == 0, r.stdout + r.stderr
    history = json.dumps(gw.chat_requests[-1].body["messages"])
    assert "write hello.txt" in history and "hi from opencode" in history and "Wrote hello.txt." in history
    events, turns, session = await events_of(env, sid)
    assert session.harness_session_id == cli_sid
    resumed = [e.data for e in events if e.kind == "harness.event" and e.data.get("type") == "cli.started"]
    assert [d["resume"] for d in resumed] == [False, True]
    assert turns[-1].status.value == "completed" and turns[-1].prompt_tokens == 40
