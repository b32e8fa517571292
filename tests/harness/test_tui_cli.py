"""From the TUI: a session on each real CLI harness (opencode, Claude Code, Codex) runs a
tool-using turn in its bubblewrap sandbox, typed into the chat and streamed onto the screen,
through the app's own engine and the relay it starts. (`lap-tui send` is covered by the other
files of this folder; the turn's machinery is the same, the driver here is the app.)"""

from __future__ import annotations

import os

import pytest

from lap_tui.tui.app import LapApp
from lap_tui.tui.widgets.transcript import TranscriptView
from tests.harness.test_every_cli import CLIS, answer, setup
from tests.harness.test_opencode import events_of, workspace
from tests.tui.conftest import chat_open, make_services, transcript_text, wait_for


def services_for(env, tmp_path):
    from lap_tui.engine.services import build_engine

    services = make_services(tmp_path, environ=env, models=["gpt-test", "claude-test"])
    services.make_engine = lambda store: build_engine(services.settings, store)
    return services


def completed(app) -> bool:
    return any(b.kind == "turn" and b.status == "completed" for b in app.screen.model.blocks)


@pytest.mark.parametrize("name", list(CLIS))
async def test_a_tool_using_turn_typed_in_the_chat(name, hx_env, gw, tmp_path, monkeypatch):
    env = hx_env
    # The app runs in this process and starts the relay as a child with this process's
    # environment (as the real `lap-tui` does with its own): make it the session's.
    for k in [k for k in os.environ if k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_", "XDG_"))]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sid, path = setup(env, gw, name)
    gw.push(answer(path, tool_calls=[CLIS[name][2]()], usage={"prompt_tokens": 5, "completion_tokens": 1}),
            answer(path, ["Appended ", "one line."], usage={"prompt_tokens": 9, "completion_tokens": 2}))
    app = LapApp(services_for(env, tmp_path), session=sid)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: chat_open(app) and app.engine is not None, what="the chat")
        await pilot.press(*"append a line", "ctrl+j")
        # Generous: the CLI starts in a new sandbox (node, the relay) on a possibly loaded machine.
        try:
            await wait_for(pilot, lambda: completed(app), timeout=240, what=f"the {name} turn completed")
        except AssertionError as exc:
            events, _turns, _s = await events_of(env, sid)
            raise AssertionError(f"{exc}; on screen: {[(b.kind, b.text[:60]) for b in app.screen.model.blocks]}; "
                                 f"journal: {[(e.kind, str(e.data)[:100]) for e in events]}") from None
        blocks = app.screen.model.blocks
        assert [b.state for b in blocks if b.kind == "tool"] == ["finished"]
        assert [b.text for b in blocks if b.kind == "assistant"] == ["Appended one line."]
        shown = transcript_text(app.screen.query_one(TranscriptView))
        assert "Appended one line." in shown and "append a line" in shown
    assert (workspace(env, sid) / "effects.log").read_text() == "one\n"  # the CLI's tool ran in the sandbox
    events, (turn,), _session = await events_of(env, sid)
    assert (turn.status.value, turn.prompt_tokens, turn.completion_tokens) == ("completed", 14, 3)
    assert [e.kind for e in events].count("tool.finished") == 1
