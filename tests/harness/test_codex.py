"""Codex, the real CLI (npm @openai/codex, pinned), in a bubblewrap sandbox, through the relay's
Responses API pass-through to the scripted gateway."""

from __future__ import annotations

import json

import pytest

from tests.harness.conftest import MASTER_KEY, cli, need_cli
from tests.harness.test_opencode import events_of, send, workspace
from tests.support.scripted_apis import RESPONSES_PATH
from tests.support.scripted_gateway import stream, tool_call


@pytest.fixture(autouse=True)
def _codex():
    need_cli("codex")


def answer(chunks=(), tool_calls=(), **kw):
    return stream(list(chunks), tool_calls=list(tool_calls), path=RESPONSES_PATH, requires_tools=True, **kw)


async def test_a_tool_using_turn_then_a_resumed_one(hx_env, gw):
    env = hx_env
    gw.path_defaults[RESPONSES_PATH] = stream(["ok"], path=RESPONSES_PATH)
    cli(env, "agents", "create", "cx", "--model", "gpt-test", "--harness", "codex")
    sid = cli(env, "sessions", "new", "cx").strip()
    write = tool_call("call_w", "exec_command", json.dumps({"cmd": "printf 'hi from codex\\n' > hello.txt"}))
    gw.push(answer(tool_calls=[write], usage={"prompt_tokens": 14, "completion_tokens": 6}, cost=0.006),
            answer(["Wrote ", "hello.txt."], usage={"prompt_tokens": 31, "completion_tokens": 4}, cost=0.007))
    r = send(env, sid, "write hello.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (workspace(env, sid) / "hello.txt").read_text() == "hi from codex\n"

    events, (t1,), session = await events_of(env, sid)
    assert [e.kind for e in events][-1] == "turn.completed"
    tools = [e.data for e in events if e.kind == "tool.started"]
    assert len(tools) == 1 and tools[0]["name"] == "command_execution" and "hello.txt" in tools[0]["arguments"]
    (done,) = [e.data for e in events if e.kind == "tool.finished"]
    assert done["tool_call_id"] == tools[0]["tool_call_id"] and done["exit_code"] == 0
    assert tools[0]["tool_call_id"].startswith(t1.id[:12])  # codex restarts its item ids every turn
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["Wrote hello.txt."]
    assert session.harness_session_id and len(session.harness_session_id) == 36  # its thread id
    assert (t1.prompt_tokens, t1.completion_tokens) == (45, 10) and abs(t1.cost_usd - 0.013) < 1e-9
    calls = [r for r in gw.requests if r.path == RESPONSES_PATH]
    assert calls and all(r.headers.get("authorization") == f"Bearer {MASTER_KEY}" for r in calls)

    gw.push(answer(["I remember."], usage={"prompt_tokens": 60, "completion_tokens": 2}))
    r = send(env, sid, "--help: what did you write?")  # never taken for an option
    assert r.returncode == 0, r.stdout + r.stderr
    last = [r for r in gw.requests if r.path == RESPONSES_PATH and r.body.get("tools")][-1]
    history = json.dumps(last.body["input"])
    assert "--help: what did you write?" in history and "write hello.txt" in history and "Wrote hello.txt." in history
    events, turns, session2 = await events_of(env, sid)
    assert session2.harness_session_id == session.harness_session_id
    started = [e.data for e in events if e.kind == "harness.event" and e.data.get("type") == "cli.started"]
    assert [d["resume"] for d in started] == [False, True]
    assert turns[-1].status.value == "completed" and turns[-1].prompt_tokens == 60


async def test_the_gateway_down_fails_the_turn_within_lap_tuis_timeout(hx_env, gw):
    import time
    from pathlib import Path

    env = hx_env
    user = Path(env["XDG_CONFIG_HOME"]) / "lap-tui" / "harnesses" / "codex"
    user.mkdir(parents=True)
    text = (Path(__file__).parents[2] / "harnesses" / "codex" / "harness.toml").read_text()
    (user / "harness.toml").write_text(text.replace("timeout = 1800", "timeout = 20"))
    cli(env, "agents", "create", "cx", "--model", "gpt-test", "--harness", "codex")
    sid = cli(env, "sessions", "new", "cx").strip()
    gw.stop()  # codex alone would retry for ever
    t0 = time.monotonic()
    r = send(env, sid, "hello?")
    elapsed = time.monotonic() - t0
    assert r.returncode != 0 and elapsed < 120
    events, (turn,), _s = await events_of(env, sid)
    assert turn.status.value == "failed"
    # "... ran longer than its 20 s timeout and was stopped; its last words: Reconnecting... 5/5
    # (unexpected status 502 Bad Gateway: the gateway could not be reached: ConnectError ...)"
    assert "20 s timeout" in turn.error and "gateway could not be reached" in turn.error, turn.error
    assert "gateway could not be reached" in r.stderr
