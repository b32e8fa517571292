"""Claude Code, the real CLI (npm @anthropic-ai/claude-code, pinned), in a bubblewrap sandbox,
through the relay's Anthropic Messages pass-through to the scripted gateway."""

from __future__ import annotations

import json

import pytest

from tests.harness.conftest import MASTER_KEY, cli, need_cli
from tests.harness.test_opencode import events_of, send, workspace
from tests.support.scripted_apis import MESSAGES_PATH
from tests.support.scripted_gateway import stream, tool_call


@pytest.fixture(autouse=True)
def _claude():
    need_cli("claude-code")


def answer(chunks=(), tool_calls=(), **kw):
    # requires_tools: only the CLI's main loop (which offers tools) takes scripted answers.
    return stream(list(chunks), tool_calls=list(tool_calls), path=MESSAGES_PATH, requires_tools=True, **kw)


async def test_a_tool_using_turn_then_a_resumed_one(hx_env, gw):
    env = hx_env
    gw.path_defaults[MESSAGES_PATH] = stream(["ok"], path=MESSAGES_PATH)  # side requests, if any
    cli(env, "agents", "create", "cc", "--model", "claude-test", "--harness", "claude-code")
    sid = cli(env, "sessions", "new", "cc").strip()
    write = tool_call("toolu_w", "Bash", json.dumps({"command": "printf 'hi from claude\\n' > hello.txt",
                                                     "description": "write hello"}))
    gw.push(answer(tool_calls=[write], usage={"prompt_tokens": 12, "completion_tokens": 6}, cost=0.004),
            answer(["Wrote ", "hello.txt."], usage={"prompt_tokens": 30, "completion_tokens": 4}, cost=0.005))
    r = send(env, sid, "write hello.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (workspace(env, sid) / "hello.txt").read_text() == "hi from claude\n"

    events, (t1,), session = await events_of(env, sid)
    assert [e.kind for e in events][-1] == "turn.completed"
    assert [(e.data["tool_call_id"], e.data["name"]) for e in events if e.kind == "tool.started"] == [("toolu_w", "Bash")]
    assert [e.data["tool_call_id"] for e in events if e.kind == "tool.finished"] == ["toolu_w"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["Wrote hello.txt."]
    # The reply streamed (--include-partial-messages): its pieces were checkpointed before it ended.
    deltas = [e for e in events if e.kind == "model.delta"]
    final = [e for e in events if e.kind == "model.message"][0]
    assert "".join(e.data["text"] for e in deltas) == "Wrote hello.txt." and all(e.seq < final.seq for e in deltas)
    # lap-tui chose the CLI's session id (a UUID) before the first turn.
    started = [e.data for e in events if e.kind == "harness.event" and e.data.get("type") == "cli.started"]
    assert started[0]["resume"] is False and len(session.harness_session_id or "") == 36
    assert (t1.prompt_tokens, t1.completion_tokens) == (42, 10) and abs(t1.cost_usd - 0.009) < 1e-9
    messages = [r for r in gw.requests if r.path == MESSAGES_PATH]
    assert messages and all(r.headers.get("authorization") == f"Bearer {MASTER_KEY}" for r in messages)
    assert all(r.headers.get("x-api-key") in (None, MASTER_KEY) for r in messages)

    gw.push(answer(["I remember."], usage={"prompt_tokens": 50, "completion_tokens": 2}))
    r = send(env, sid, "--help: what did you write?")  # never taken for an option
    assert r.returncode == 0, r.stdout + r.stderr
    last = [r for r in gw.requests if r.path == MESSAGES_PATH and r.body.get("tools")][-1]
    history = json.dumps(last.body["messages"])
    assert "--help: what did you write?" in history and "write hello.txt" in history and "Wrote hello.txt." in history and "toolu_w" in history
    events, turns, session2 = await events_of(env, sid)
    assert session2.harness_session_id == session.harness_session_id
    started = [e.data for e in events if e.kind == "harness.event" and e.data.get("type") == "cli.started"]
    assert [d["resume"] for d in started] == [False, True]
    assert turns[-1].status.value == "completed" and turns[-1].prompt_tokens == 50
