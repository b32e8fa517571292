"""How a CLI harness's turn reads in the chat (the pure chat model, no terminal)."""

from __future__ import annotations

import pytest

from lap_tui.domain.journal import JournalEvent
from lap_tui.tui.chat_model import ChatModel


@pytest.fixture(autouse=True)
def _needs_bwrap():
    """Nothing runs in a sandbox here."""


def test_a_cli_turn_shows_its_tool_reply_and_the_relays_totals():
    events = [("turn.queued", {}), ("user.message", {"text": "write"}), ("turn.started", {"model": "m"}),
              ("harness.event", {"type": "cli.started", "attempt": 0}),
              ("harness.event", {"type": "cli.session", "harness_session_id": "ses_1"}),
              ("tool.started", {"tool_call_id": "c1", "name": "bash", "arguments": '{"command": "ls"}'}),
              ("tool.finished", {"tool_call_id": "c1", "output": "a.txt", "exit_code": 0}),
              ("harness.event", {"type": "usage", "prompt_tokens": 3, "completion_tokens": 1, "cost_usd": 0.0}),
              ("model.message", {"text": "Done.", "tool_calls": [], "usage": {}, "cost_usd": 0.0}),
              ("harness.event", {"type": "cli.exited", "exit_code": 0}),
              ("turn.completed", {"prompt_tokens": 30, "completion_tokens": 5, "cost_usd": 0.01, "harness": "x"})]
    m = ChatModel()
    for i, (kind, data) in enumerate(events, 1):
        m.apply(JournalEvent(i, "s", "t", kind, "2026-01-01T00:00:00.000000Z", data))
    assert [(b.kind, b.text if b.kind != "tool" else b.state) for b in m.blocks] == [
        ("turn", ""), ("user", "write"), ("tool", "finished"), ("assistant", "Done.")]
    turn = m.blocks[0]
    assert (turn.prompt_tokens, turn.completion_tokens, turn.cost_usd) == (30, 5, 0.01)
    assert turn.status == "completed"
