"""Harness definitions (TOML) and the mapping of CLI output lines to events: pure, no CLI needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lap_tui.harness.cli import plan_turn
from lap_tui.harness.definition import load_definitions
from lap_tui.harness.events import map_event, parse_line, session_id_of


@pytest.fixture(autouse=True)
def _needs_bwrap():
    """Overrides the harness tests' bubblewrap requirement: nothing runs here."""


def test_the_bundled_definitions_load_and_a_users_replaces_one(tmp_path: Path):
    found, problems = load_definitions()
    assert problems == [] and {"builtin", "opencode", "claude-code", "codex"} <= set(found)
    assert found["builtin"].kind == "builtin" and not found["builtin"].is_cli
    assert all(found[n].dockerfile is not None for n in ("builtin", "opencode", "claude-code", "codex"))
    (tmp_path / "opencode").mkdir()
    text = (Path(found["opencode"].source)).read_text().replace("timeout = 1800", "timeout = 60")
    (tmp_path / "opencode" / "harness.toml").write_text(text)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "harness.toml").write_text(text.replace('version = "1.18.33"', 'version = "^1.18"'))
    found, problems = load_definitions(tmp_path)
    assert found["opencode"].timeout == 60 and "broken" not in found
    assert len(problems) == 1 and "not an exact version" in problems[0]


def lines(h, *objs):
    return [[(m.kind, m.data) for m in map_event(h, parse_line(json.dumps(o).encode()))] for o in objs]


def test_each_clis_output_maps_to_events():
    d = load_definitions()[0]
    oc = d["opencode"]
    tool = {"type": "tool_use", "sessionID": "ses_1", "part": {"callID": "c1", "tool": "bash", "state": {
        "status": "completed", "input": {"command": "ls"}, "output": "a\n"}}}
    assert lines(oc, tool) == [[("tool_use", {"tool_call_id": "c1", "name": "bash", "arguments": '{"command": "ls"}'}),
                                ("tool_result", {"tool_call_id": "c1", "output": "a\n", "exit_code": None, "error": None})]]
    assert session_id_of(oc, tool) == "ses_1"
    assert session_id_of(oc, {"sessionID": "../../etc"}) is None  # becomes an argument: checked
    cc = d["claude-code"]
    assistant = {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                                               "input": {"command": "ls"}}]}}
    result = {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1",
                                                       "content": "x", "is_error": True}]}}
    final = {"type": "result", "usage": {"input_tokens": 3, "output_tokens": 2}, "total_cost_usd": 0.5}
    assert lines(cc, assistant, result, final) == [
        [("tool_use", {"tool_call_id": "t1", "name": "Bash", "arguments": '{"command": "ls"}'})],
        [("tool_result", {"tool_call_id": "t1", "output": "x", "exit_code": None, "error": "the tool failed"})],
        [("usage", {"prompt_tokens": 3, "completion_tokens": 2, "cost_usd": 0.5})]]
    cx = d["codex"]
    msg = {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "hi"}}
    warn = {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": "metadata"}}
    assert lines(cx, msg, warn, {"type": "turn.failed", "error": {"message": "boom"}}) == [
        [("text", {"text": "hi"})], [], [("error", {"message": "boom"})]]
    assert lines(cx, {"type": "something.new"}) == [[("raw", {"type": "something.new"})]]


def test_a_turns_command_keeps_the_prompt_one_argument_and_the_model_inside_its_json():
    oc = load_definitions()[0]["opencode"]
    model = 'gpt"},"x":{"a":"b'
    plan = plan_turn(oc, turn_id="ab" * 16, attempt=0, prompt="--help $(rm -rf /)", model=model, token="lap-t",
                     session_id=None, resume=False)
    assert plan.argv[-2:] == ["--", "--help $(rm -rf /)"] and plan.argv[:2] == ["/bin/sh", "-c"]
    cfg = json.loads(plan.env["OPENCODE_CONFIG_CONTENT"])
    assert cfg["model"] == f"lap/{model}" and cfg["provider"]["lap"]["options"]["apiKey"] == "lap-t"
    assert list(cfg["provider"]["lap"]["models"]) == [model]
    with pytest.raises(Exception):
        plan_turn(oc, turn_id="../x", attempt=0, prompt="p", model="m", token="t", session_id=None, resume=False)
