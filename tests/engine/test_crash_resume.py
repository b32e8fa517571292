"""SIGKILL the process running a turn at many points, then resume in a new process.

After resume: each completed step is in the journal exactly once, every tool call the model
was told about has exactly one result, and completed tool calls' file effects happened once.
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from lap_tui.domain.journal import TurnStatus
from tests.conftest import make_session
from tests.support.scripted_gateway import stream, tool_call


def bash(id_: str, command: str):
    return tool_call(id_, "bash", json.dumps({"command": command}), fragment_size=5)


TOOLS = [bash("c1", "echo c1 >> effects.log; sleep 4"), bash("c2", "echo c2 >> effects.log")]
FAST_TOOLS = [bash("c1", "echo c1 >> effects.log"), bash("c2", "echo c2 >> effects.log")]
FINAL = stream(["all ", "done"], usage={"prompt_tokens": 5, "completion_tokens": 2})

# point -> (responses for the doomed process, the event that triggers the kill, its count,
#           responses for the resuming process, expected effects)
POINTS = {
    "awaiting-model": ([stream([], tool_calls=FAST_TOOLS, first_delay=5)], "model.requested", 1,
                       [stream([], tool_calls=FAST_TOOLS), FINAL], ["c1", "c2"]),
    "mid-stream": ([stream([f"t{i} " for i in range(100)], delay=0.05, tool_calls=FAST_TOOLS)], "model.delta", 1,
                   [stream(["again"], tool_calls=FAST_TOOLS), FINAL], ["c1", "c2"]),
    # c1 is interrupted (never re-run); c2 had not started, so it runs after the resume.
    "tool-running": ([stream([], tool_calls=TOOLS)], "tool.started", 1,
                     [FINAL], ["c1", "c2"]),
    "after-tools": ([stream([], tool_calls=FAST_TOOLS), stream(["slow"], first_delay=5)], "model.requested", 2,
                    [FINAL], ["c1", "c2"]),
}


async def wait_for_event(store, session_id: str, kind: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(e.kind == kind for e in await store.read_events(session_id)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{kind} x{count} never journaled")


@pytest.mark.parametrize("point", list(POINTS))
async def test_sigkill_then_resume(point, store, store_url, gw, engine_env, settings, tmp_path):
    doomed, kind, count, resumed, effects = POINTS[point]
    env = {**os.environ, **engine_env, "LAP_DATABASE_URL": store_url}
    s = await make_session(store)
    gw.push(*doomed)
    proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "send", s.id, "run the tools", "--wait"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await wait_for_event(store, s.id, kind, count)
        if point == "tool-running":
            await asyncio.sleep(0.5)  # let the command's first effect happen
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    gw.reset()
    gw.push(*resumed)
    out = subprocess.run([sys.executable, "-m", "lap_tui", "worker", "--once", "--poll", "0.05"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

    turn = (await store.list_turns(s.id))[0]
    events = await store.read_events(s.id)
    assert turn.status is TurnStatus.COMPLETED, (turn.error, [e.kind for e in events])
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    ks = [e.kind for e in events]
    assert ks.count("turn.resumed") == 1 and ks.count("turn.completed") == 1
    # Each tool call has exactly one outcome in the journal.
    outcomes = Counter(e.data["tool_call_id"] for e in events if e.kind in ("tool.finished", "tool.interrupted"))
    assert outcomes == Counter({"c1": 1, "c2": 1})
    if point == "tool-running":
        assert [e.data["tool_call_id"] for e in events if e.kind == "tool.interrupted"] == ["c1"]
    # Every tool call the model was told about came back with exactly one result.
    msgs = gw.chat_requests[-1].body["messages"]
    called = [tc["id"] for m in msgs if m["role"] == "assistant" for tc in m.get("tool_calls", [])]
    results = Counter(m["tool_call_id"] for m in msgs if m["role"] == "tool")
    assert called and results == Counter(called)
    # The effects of the tool calls happened once each.
    from lap_tui.engine.services import build_engine

    engine = build_engine(settings, store)
    try:
        session = await store.get_session(s.id)
        log = (await engine.sandboxes.read_file(session.sandbox_ref, "effects.log")).decode().split()
    finally:
        await engine.close()
    assert log == effects
