"""The conversation the model sees, rebuilt from the journal (never stored as a blob)."""

from __future__ import annotations

from typing import Any, Iterable

from lap_tui.domain.journal import JournalEvent, ToolCallState
from lap_tui.domain.replay import TurnState, rebuild_turn

INTERRUPTED_RESULT = ("[interrupted: lap-tui stopped while this tool call was running; it was not run again. "
                      "Check its effects before repeating it.]")


def turn_order(events: Iterable[JournalEvent]) -> list[str]:
    """Turn ids in the order their first event was journaled."""
    seen: dict[str, None] = {}
    for ev in events:
        if ev.turn_id and ev.turn_id not in seen:
            seen[ev.turn_id] = None
    return list(seen)


def build_messages(system_prompt: str, events: list[JournalEvent], current_turn: str | None) -> list[dict[str, Any]]:
    """OpenAI chat messages for the next model call of `current_turn` (None: every turn, all
    finished, e.g. the history before a turn, built once per turn by the engine).

    Earlier turns come first, in journal order; turns queued after the current one are left
    out. Every assistant tool call gets exactly one tool result: its output, or a note that
    it was interrupted or never ran.
    """
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    by_turn: dict[str, list[JournalEvent]] = {}
    for ev in events:
        if ev.turn_id:
            by_turn.setdefault(ev.turn_id, []).append(ev)
    for turn_id in turn_order(events):
        state = rebuild_turn(turn_id, by_turn[turn_id])
        messages += turn_messages(state, current=(turn_id == current_turn))
        if turn_id == current_turn:
            break
    return messages


def turn_messages(state: TurnState, *, current: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if state.user_message is not None:
        out.append({"role": "user", "content": state.user_message})
    for step in state.steps:
        msg: dict[str, Any] = {"role": "assistant", "content": step.text or None}
        if step.tool_calls:
            msg["tool_calls"] = [{"id": tc.id, "type": "function",
                                  "function": {"name": tc.name, "arguments": tc.arguments or "{}"}}
                                 for tc in step.tool_calls]
        out.append(msg)
        for tc in step.tool_calls:
            tc = state.tool_calls[tc.id]
            if tc.state is ToolCallState.FINISHED:
                content = tc.output or ""
                if tc.exit_code not in (None, 0):
                    content = f"[exit code {tc.exit_code}]\n{content}"
            elif tc.state is ToolCallState.INTERRUPTED:
                content = INTERRUPTED_RESULT if not tc.error or tc.error.startswith("interrupted") else \
                    f"[interrupted: {tc.error}]"
            elif current:
                continue  # still to run in this turn
            else:
                content = "[not run: the turn ended before this tool call ran]"
            out.append({"role": "tool", "tool_call_id": tc.id, "content": content})
    return out
