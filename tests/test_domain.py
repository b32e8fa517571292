"""Pure domain rules: names, settings validation, state machines and turn replay."""

from __future__ import annotations

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import InvalidInput, InvalidTransition
from lap_tui.domain.journal import EventKind, JournalEvent, ToolCallState, TurnStatus, advance_turn
from lap_tui.domain.names import label_problem, validate_label
from lap_tui.domain.replay import rebuild_turn


@pytest.mark.parametrize("name", ["a", "bot", "code-reviewer", "x1", "1x", "a" * 63])
def test_valid_labels(name):
    assert validate_label("agent", name) == name and label_problem("agent", name) is None


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("-bot", "start and end"), ("bot-", "start and end"), ("Bot", "'B'"),
    ("my_bot", "'_'"), ("a" * 64, "64 characters"), ("bot.v2", "'.'"),
])
def test_invalid_labels(name, why):
    with pytest.raises(InvalidInput, match=why):
        validate_label("agent", name)
    assert why in label_problem("agent", name)


def test_sandbox_settings_validation_and_memory():
    assert SandboxSettings(memory="2Gi").memory_bytes == 2 * 2**30
    assert SandboxSettings(memory="500M").memory_bytes == 500 * 10**6
    for bad in (dict(cpu="lots"), dict(scope="team"), dict(backend="docker"), dict(env=("1BAD",)),
                dict(idle_suspend_seconds=-1)):
        with pytest.raises(InvalidInput):
            SandboxSettings(**bad).validate()
    with pytest.raises(InvalidInput, match="harness"):
        Agent(id="x", name="a", team="t", model="m", harness="Emacs!").validate()  # not a label


@pytest.mark.parametrize("bad, why", [
    (dict(memory="12"), "'12' \\(12 bytes\\) is too little"), (dict(memory="63Mi"), "too little"),
    (dict(memory="1K"), "too little"), (dict(cpu="0"), "too little"), (dict(cpu="0.05"), "too little"),
    (dict(cpu="99m"), "too little"), (dict(cpu="0m"), "too little"),
])
def test_sandbox_limits_below_the_floor_are_refused(bad, why):
    with pytest.raises(InvalidInput, match=why) as ei:
        SandboxSettings(**bad).validate()
    assert "at least" in (ei.value.hint or "")


def test_sandbox_limits_at_the_floor_are_accepted():
    SandboxSettings(memory="64Mi", cpu="100m").validate()
    SandboxSettings(memory=str(64 * 2**20), cpu="0.1").validate()
    SandboxSettings(memory="1G", cpu="2").validate()
    with pytest.raises(InvalidInput, match="model"):
        Agent(id="x", name="a", team="t", model=" ").validate()


def test_turn_state_machine():
    assert advance_turn(TurnStatus.QUEUED, TurnStatus.RUNNING) is TurnStatus.RUNNING
    assert advance_turn(TurnStatus.FAILED, TurnStatus.QUEUED) is TurnStatus.QUEUED
    for a, b in [(TurnStatus.COMPLETED, TurnStatus.RUNNING), (TurnStatus.QUEUED, TurnStatus.COMPLETED),
                 (TurnStatus.CANCELLED, TurnStatus.QUEUED)]:
        with pytest.raises(InvalidTransition):
            advance_turn(a, b)


def ev(seq: int, kind: EventKind, turn: str = "t1", **data) -> JournalEvent:
    return JournalEvent(seq=seq, session_id="s", turn_id=turn, kind=kind.value, at="", data=data)


def crashed_turn_events() -> list[JournalEvent]:
    return [
        ev(1, EventKind.TURN_QUEUED), ev(2, EventKind.USER_MESSAGE, text="list files"),
        ev(3, EventKind.TURN_STARTED), ev(4, EventKind.MODEL_REQUESTED),
        ev(5, EventKind.MODEL_DELTA, text="Let me "), ev(6, EventKind.MODEL_DELTA, text="look."),
        ev(7, EventKind.MODEL_MESSAGE, text="Let me look.",
           tool_calls=[{"id": "c1", "name": "bash", "arguments": '{"command":"ls"}'},
                       {"id": "c2", "name": "bash", "arguments": '{"command":"pwd"}'},
                       {"id": "c3", "name": "read_file", "arguments": '{"path":"a"}'}],
           usage={"prompt_tokens": 10, "completion_tokens": 5}, cost_usd=0.01),
        ev(8, EventKind.TOOL_STARTED, tool_call_id="c1"),
        ev(9, EventKind.TOOL_FINISHED, tool_call_id="c1", output="a\nb", exit_code=0),
        ev(10, EventKind.TOOL_STARTED, tool_call_id="c2"),
        ev(11, EventKind.USER_MESSAGE, turn="other", text="not mine"),
        # crash here: c2 started and never finished, c3 never started
    ]


def test_rebuild_turn_after_a_crash():
    st = rebuild_turn("t1", crashed_turn_events(), crashed=True)
    assert st.status is TurnStatus.INTERRUPTED
    assert st.user_message == "list files"
    assert [s.text for s in st.steps] == ["Let me look."]
    assert st.tool_calls["c1"].state is ToolCallState.FINISHED and st.tool_calls["c1"].output == "a\nb"
    assert st.tool_calls["c2"].state is ToolCallState.INTERRUPTED  # never silently re-run
    assert [tc.id for tc in st.pending_tool_calls] == ["c3"]  # never started: safe to run
    assert (st.prompt_tokens, st.completion_tokens, st.cost_usd) == (10, 5, 0.01)
    assert st.last_seq == 10


def test_rebuild_keeps_partial_text_of_an_unfinished_step():
    events = crashed_turn_events()[:6]
    st = rebuild_turn("t1", events)
    assert st.status is TurnStatus.RUNNING and st.model_call_in_flight
    assert st.partial_text == "Let me look."
    done = rebuild_turn("t1", events + [ev(7, EventKind.TURN_FAILED, reason="gateway down")])
    assert done.status is TurnStatus.FAILED and done.error == "gateway down"
