"""Rebuild a turn's state from its journal events: the basis of resume after a crash."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from lap_tui.domain.journal import EventKind, JournalEvent, ToolCall, ToolCallState, TurnStatus


@dataclass
class ModelStep:
    text: str
    tool_calls: list[ToolCall]
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float = 0.0


@dataclass
class TurnState:
    turn_id: str
    status: TurnStatus = TurnStatus.QUEUED
    user_message: str | None = None
    steps: list[ModelStep] = field(default_factory=list)
    tool_calls: dict[str, ToolCall] = field(default_factory=dict)
    partial_text: str = ""  # last checkpointed text of a model step that never completed
    model_call_in_flight: bool = False
    error: str | None = None
    last_seq: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def unfinished_tool_calls(self) -> list[ToolCall]:
        """Tool calls that started but have no result: after a crash these become interrupted."""
        return [tc for tc in self.tool_calls.values() if tc.state is ToolCallState.STARTED]

    @property
    def pending_tool_calls(self) -> list[ToolCall]:
        """Tool calls the model asked for that never started: safe to run now."""
        return [tc for tc in self.tool_calls.values() if tc.state is ToolCallState.REQUESTED]


def rebuild_turn(turn_id: str, events: Iterable[JournalEvent], *, crashed: bool = False) -> TurnState:
    """Fold a turn's events (in seq order) into its state.

    With `crashed=True` (its driver is gone), a running turn becomes interrupted and every
    tool call that started but never finished is marked interrupted: it is never silently
    run again. The caller journals a `tool.interrupted` event for each such call.
    """
    st = TurnState(turn_id=turn_id)
    for ev in events:
        if ev.turn_id != turn_id:
            continue
        st.last_seq = ev.seq
        d = ev.data
        kind = ev.kind
        if kind == EventKind.TURN_QUEUED:
            st.status = TurnStatus.QUEUED
        elif kind in (EventKind.TURN_STARTED, EventKind.TURN_RESUMED):
            st.status = TurnStatus.RUNNING
        elif kind == EventKind.USER_MESSAGE:
            st.user_message = d.get("text", "")
        elif kind == EventKind.MODEL_REQUESTED:
            st.model_call_in_flight = True
            st.partial_text = ""
        elif kind == EventKind.MODEL_DELTA:
            # Deltas carry only the text since the previous checkpoint: O(1) per checkpoint.
            st.partial_text += d.get("text", "")
        elif kind == EventKind.MODEL_MESSAGE:
            calls = [ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments", ""))
                     for c in d.get("tool_calls", [])]
            usage = d.get("usage", {}) or {}
            step = ModelStep(text=d.get("text", ""), tool_calls=calls, usage=usage,
                             cost_usd=float(d.get("cost_usd", 0.0) or 0.0))
            st.steps.append(step)
            for c in calls:
                st.tool_calls[c.id] = c
            st.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
            st.completion_tokens += int(usage.get("completion_tokens", 0) or 0)
            st.cost_usd += step.cost_usd
            st.partial_text = ""
            st.model_call_in_flight = False
        elif kind == EventKind.TOOL_STARTED:
            tc = st.tool_calls.get(d["tool_call_id"])
            if tc is not None and tc.state is ToolCallState.REQUESTED:
                tc.move(ToolCallState.STARTED)
        elif kind == EventKind.TOOL_FINISHED:
            tc = st.tool_calls.get(d["tool_call_id"])
            if tc is not None and tc.state is ToolCallState.STARTED:
                tc.move(ToolCallState.FINISHED)
                tc.output = d.get("output")
                tc.exit_code = d.get("exit_code")
                tc.truncated = bool(d.get("truncated", False))
                tc.error = d.get("error")
        elif kind == EventKind.TOOL_INTERRUPTED:
            tc = st.tool_calls.get(d["tool_call_id"])
            if tc is not None and tc.state in (ToolCallState.REQUESTED, ToolCallState.STARTED):
                tc.move(ToolCallState.INTERRUPTED)
                tc.error = d.get("reason", "interrupted")
        elif kind == EventKind.TURN_COMPLETED:
            st.status = TurnStatus.COMPLETED
        elif kind == EventKind.TURN_FAILED:
            st.status = TurnStatus.FAILED
            st.error = d.get("reason")
        elif kind == EventKind.TURN_CANCELLED:
            st.status = TurnStatus.CANCELLED
    if crashed and st.status is TurnStatus.RUNNING:
        st.status = TurnStatus.INTERRUPTED
        for tc in st.unfinished_tool_calls:
            tc.move(ToolCallState.INTERRUPTED)
            tc.error = "interrupted: lap-tui stopped while this tool call was running"
    return st
