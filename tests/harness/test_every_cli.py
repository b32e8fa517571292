"""What every CLI harness must survive, run on each real CLI: its driver SIGKILLed mid-turn (a new
driver re-attaches, every event once) and its sandbox's processes killed mid-turn (resumed
through the CLI's resume form)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from tests.harness.conftest import cli, need_cli
from tests.harness.test_opencode import events_of, is_cli, lap, wait_for, workspace
from tests.support.scripted_apis import MESSAGES_PATH, RESPONSES_PATH
from tests.support.scripted_gateway import stream, tool_call

# harness -> (model, API path or None for chat, a tool call that appends "one" to effects.log)
CLIS = {
    "opencode": ("gpt-test", None, lambda: tool_call("call_1", "bash", json.dumps(
        {"command": "echo one >> effects.log", "description": "append"}))),
    "claude-code": ("claude-test", MESSAGES_PATH, lambda: tool_call("toolu_1", "Bash", json.dumps(
        {"command": "echo one >> effects.log", "description": "append"}))),
    "codex": ("gpt-test", RESPONSES_PATH, lambda: tool_call("call_1", "exec_command", json.dumps(
        {"cmd": "echo one >> effects.log"}))),
}


def answer(path, chunks=(), tool_calls=(), **kw):
    extra = {"path": path, "requires_tools": True} if path else {}
    return stream(list(chunks), tool_calls=list(tool_calls), **extra, **kw)


def setup(env, gw, name):
    model, path, _ = CLIS[name]
    need_cli(name)
    if path:
        gw.path_defaults[path] = stream(["ok"], path=path)
    cli(env, "agents", "create", "a", "--model", model, "--harness", name)
    return cli(env, "sessions", "new", "a").strip(), path


@pytest.mark.parametrize("name", list(CLIS))
async def test_sigkill_the_driver_mid_turn(name, hx_env, gw, tmp_path):
    env = hx_env
    sid, path = setup(env, gw, name)
    release = tmp_path / "release"
    gw.push(answer(path, tool_calls=[CLIS[name][2]()], usage={"prompt_tokens": 5, "completion_tokens": 1}),
            answer(path, ["after ", "the kill"], usage={"prompt_tokens": 9, "completion_tokens": 2},
                   wait_file=str(release)))
    doomed = lap(env, "send", sid, "run it", "--wait")
    try:
        await wait_for(env, sid, lambda evs: any(e.kind == "tool.finished" for e in evs), "the tool finished")
        os.kill(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(30)
    worker = lap(env, "worker", "--once", "--poll", "0.05")
    try:
        await wait_for(env, sid, lambda evs: any(is_cli(e, "cli.reattached") for e in evs), "a re-attach")
        release.touch()
        _out, err = worker.communicate(timeout=180)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    events, (turn,), _s = await events_of(env, sid)
    counts = Counter(e.kind for e in events)
    assert (counts["tool.started"], counts["tool.finished"], counts["model.message"]) == (1, 1, 1), counts
    assert sum(is_cli(e, "cli.started") for e in events) == 1  # one CLI process did the whole turn
    assert sum(is_cli(e, "cli.session") for e in events) <= 1
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["after the kill"]
    cursors = [(e.data["cli"]["attempt"], e.data["cli"]["at"], e.data["cli"]["n"]) for e in events if "cli" in e.data]
    assert len(cursors) == len(set(cursors))
    assert (workspace(env, sid) / "effects.log").read_text() == "one\n"
    assert (turn.status.value, turn.prompt_tokens, turn.completion_tokens) == ("completed", 14, 3)


@pytest.mark.parametrize("name", list(CLIS))
async def test_the_sandboxs_processes_killed_mid_turn(name, hx_env, gw, tmp_path):
    env = hx_env
    sid, path = setup(env, gw, name)
    release = tmp_path / "release"
    gw.push(answer(path, tool_calls=[CLIS[name][2]()]), answer(path, ["never seen"], wait_file=str(release)))
    driver = lap(env, "send", sid, "run it", "--wait")
    try:
        await wait_for(env, sid, lambda evs: any(e.kind == "tool.finished" for e in evs), "the tool finished")
        gw.push(answer(path, ["resumed and done"]))
        cli(env, "sandboxes", "suspend", f"s-{sid[:12]}")
        _out, err = driver.communicate(timeout=180)
    finally:
        release.touch()
        driver.kill()
    assert driver.returncode == 0, err
    events, (turn,), _s = await events_of(env, sid)
    resumed = [e.data for e in events if is_cli(e, "cli.resumed")]
    assert len(resumed) == 1 and resumed[0]["resume"] is True
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["resumed and done"]
    assert sum(e.kind == "tool.started" for e in events) == 1
    assert (workspace(env, sid) / "effects.log").read_text() == "one\n"
    assert turn.status.value == "completed"


DUMP = "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' > seen.txt"
TOOLS = {"opencode": ("bash", {"command": DUMP, "description": "dump"}),
         "claude-code": ("Bash", {"command": DUMP, "description": "dump"}),
         "codex": ("exec_command", {"cmd": DUMP})}


@pytest.mark.parametrize("name", list(CLIS))
async def test_the_master_key_is_nowhere_in_the_sandbox(name, hx_env, gw):
    from tests.harness.conftest import MASTER_KEY

    env = hx_env
    sid, path = setup(env, gw, name)
    tool, args = TOOLS[name]
    gw.push(answer(path, tool_calls=[tool_call("call_d", tool, json.dumps(args))]), answer(path, ["dumped"]))
    r = lap(env, "send", sid, "dump", "--wait")
    _out, err = r.communicate(timeout=180)
    assert r.returncode == 0, err
    ws = workspace(env, sid)
    seen = (ws / "seen.txt").read_text()
    assert "lap-" in seen and "/lap/relay" in seen  # the CLI's own token and the forwarder are seen
    assert MASTER_KEY not in seen
    for p in ws.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert MASTER_KEY.encode() not in p.read_bytes(), p
