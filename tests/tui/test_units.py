"""The pure parts of the UI: neutralising, masking, state files, folding the journal."""

from __future__ import annotations

import json

from lap_tui.domain.journal import JournalEvent
from lap_tui.domain.secrets import MASK, Redactor
from lap_tui.tui import commands, keymap
from lap_tui.tui.chat_model import ChatModel
from lap_tui.tui.safety import Sanitiser, neutralise
from lap_tui.tui.state import UiState, load_state, save_state


def test_neutralise_drops_sequences_and_shows_controls():
    evil = "a\x1b[2J\x1b]0;title\x07\x1b]52;c;Zm9v\x07b\rc\x07d\x9b31me\u202eX"
    out = neutralise(evil)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert out.startswith("ab\nc") and "\u2407" in out  # BEL shown as a control picture
    assert neutralise("line\r\nnext\ttab") == "line\nnext\ttab"


def test_stream_never_splits_a_secret_or_a_sequence():
    s = Sanitiser(Redactor(["hunter2-secret"]))
    stream = s.stream()
    chunks = ["pass: hun", "ter2-se", "cret done \x1b[3", "1mred\x1b[0m", " end"]
    out = "".join(stream.feed(c) for c in chunks) + stream.flush()
    assert out == f"pass: {MASK} done red end"
    # Without a possible secret prefix nothing is held back.
    assert s.stream().feed("plain text") == "plain text"


def test_state_round_trip_and_broken_files(tmp_path):
    path = tmp_path / "s" / "ui-state.json"
    st = UiState(screen="chat", agent_id="a1", session_id="s1", chat_follow=False, chat_scroll_from_end=12.0)
    st.set_draft("s1", "half a thought")
    save_state(path, st)
    back = load_state(path)
    assert back == st and not list(path.parent.glob(".ui-state.*"))  # no temp file left behind
    path.write_text("{not json")
    assert load_state(path) == UiState()
    path.write_text(json.dumps({"version": 1, "screen": "nowhere", "chat_follow": "yes"}))
    assert load_state(path).screen == "agents" and load_state(path).chat_follow is True


def test_drafts_are_bounded_and_empty_ones_dropped():
    st = UiState()
    for i in range(60):
        st.set_draft(f"s{i}", "x")
    st.set_draft("s59", "  ")
    assert len(st.drafts) == 49 and "s0" not in st.drafts and "s59" not in st.drafts


def ev(seq, kind, turn="t1", **data):
    return JournalEvent(seq=seq, session_id="s", turn_id=turn, kind=kind, at="", data=data)


def test_live_text_and_checkpoints_are_shown_once():
    m = ChatModel()
    m.apply(ev(1, "turn.queued"))
    m.apply(ev(1, "user.message", text="hi"))
    m.apply(ev(2, "model.requested"))
    appended = []
    for ch in m.apply_live("t1", "Hello ") + m.apply_live("t1", "wor"):
        appended.append(ch.text)
    # The checkpoint of the same text arrives later: nothing new.
    assert [c for c in m.apply(ev(3, "model.delta", text="Hello wor")) if c.op == "append"] == []
    # A checkpoint ahead of live text adds only the missing part.
    appended += [c.text for c in m.apply(ev(4, "model.delta", text="ld!")) if c.op == "append"]
    assert [c.text for c in m.apply_live("t1", "ld!") if c.op == "append"] == []
    assert "".join(appended) == "Hello world!"
    changes = m.apply(ev(5, "model.message", text="Hello world!", usage={"prompt_tokens": 3}, cost_usd=0.5))
    assert not [c for c in changes if c.op == "replace"]
    turn = m.turn("t1")
    assert turn.prompt_tokens == 3 and turn.cost_usd == 0.5


def test_live_text_ahead_of_model_requested_is_the_same_step():
    m = ChatModel()
    m.apply_live("t1", "early ")  # before the journal showed the question: held back
    assert m.blocks == []
    m.apply(ev(1, "turn.queued"))
    m.apply(ev(2, "user.message", text="q"))
    m.apply_live("t1", "more")
    m.apply(ev(3, "model.requested"))
    assert [(b.kind, b.text) for b in m.blocks] == [("turn", ""), ("user", "q"), ("assistant", "early more")]


def test_turn_states_fold_with_reason_and_retry():
    m = ChatModel()
    for e in [ev(1, "turn.queued"), ev(2, "user.message", text="hi"), ev(3, "turn.started"),
              ev(4, "model.requested"), ev(5, "model.delta", text="par"),
              ev(6, "turn.failed", reason="gateway down")]:
        m.apply(e)
    t = m.last_failed_turn()
    assert t is not None and t.reason == "gateway down"
    assistant = [b for b in m.blocks if b.kind == "assistant"][0]
    assert assistant.interrupted and not assistant.streaming
    m.apply(ev(7, "turn.queued", retry=True))
    assert m.active_turn() is t and t.status == "queued" and m.last_failed_turn() is None


def test_tool_calls_fold_from_the_model_message():
    m = ChatModel()
    m.apply(ev(1, "model.message", text="", tool_calls=[{"id": "c1", "name": "bash", "arguments": "{}"}]))
    m.apply(ev(2, "tool.started", tool_call_id="c1"))
    m.apply(ev(3, "tool.finished", tool_call_id="c1", output="ok", exit_code=0, truncated=True))
    tool = [b for b in m.blocks if b.kind == "tool"][0]
    assert (tool.state, tool.output, tool.exit_code, tool.truncated) == ("finished", "ok", 0, True)


def test_every_binding_has_a_unique_id_and_commands_parse():
    assert all("." in k for k in keymap.KEYS)
    remap, problems = keymap.check_keymap({"chat.send": "f5", "nope.nothing": "x"})
    assert remap == {"chat.send": "f5"} and "nope.nothing" in problems[0]
    cmd, arg, _ = commands.parse(":theme lap-light")
    assert cmd.name == "theme" and arg == "lap-light"
    assert commands.parse(":q")[0].name == "quit"
    assert commands.parse(":nothing")[0] is None
    assert {"agents", "sessions", "sandboxes", "theme", "quit"} <= {c.name for c in commands.unique()}


def test_plural():
    from lap_tui.tui.formatting import plural

    assert (plural(0, "session"), plural(1, "session"), plural(2, "agent")) == ("0 sessions", "1 session", "2 agents")
