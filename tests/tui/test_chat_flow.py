"""The chat end to end with the real engine, a real SQLite store, the scripted gateway over real
HTTP and real (bubblewrap) sandboxes: create an agent, start a session, send, watch the streamed
reply with its tool call, quit, reopen into the same view; cancel; a failed turn and its retry."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, TextArea

from lap_tui.domain.secrets import MASK
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.chat import ChatScreen
from lap_tui.tui.screens.sessions import SessionsScreen
from lap_tui.tui.widgets.transcript import TranscriptView
from tests.support.scripted_gateway import ScriptedGateway, error, stream, tool_call
from tests.tui.conftest import chat_open, entry_text, last_turn_text, make_services, transcript_text, tui_environ, wait_for

SECRET = "ghp-team-secret-123"

pytestmark = pytest.mark.usefixtures("require_bwrap")  # the engine's sandboxes are real


@pytest.fixture
def gw():
    with ScriptedGateway(models=["gpt-test", "gpt-other"]) as g:
        yield g


def services_for(tmp_path, gw, **kw):
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine

    env = tui_environ(tmp_path, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-master-key",
                      CONTAINER_ENV_GH_TOKEN=SECRET)
    services = make_services(tmp_path, environ=env, models=["gpt-test", "gpt-other"], **kw)
    services.make_engine = lambda store: build_engine(services.settings, store,
                                                      options=EngineOptions(lease_ttl=5.0))
    return services


def turn_status(app, status: str) -> bool:
    screen = app.screen
    return isinstance(screen, ChatScreen) and any(
        b.kind == "turn" and b.status == status for b in screen.model.blocks)


async def open_new_chat(app, pilot) -> ChatScreen:
    await wait_for(pilot, lambda: app.store is not None and app.engine is not None, what="store and engine")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="sessions")
    await pilot.press("n")
    await wait_for(pilot, lambda: chat_open(app), what="chat")
    return app.screen


async def create_agent(app, pilot, name="helper") -> None:
    await wait_for(pilot, lambda: app.store is not None, what="store")
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
    form = app.screen
    await pilot.press(*"Bad Name")
    err = form.query_one("#err-name")
    assert err.has_class("-shown") and "may not contain" in str(err.render())
    form.query_one("#f-name", Input).value = name
    await pilot.pause()
    assert not err.has_class("-shown")
    form.query_one("#f-model", Input).focus()
    await pilot.press("ctrl+s")  # model still empty: refused, and said why
    assert isinstance(app.screen, AgentForm) and form.query_one("#err-model").has_class("-shown")
    await pilot.press(*"gpt-test")
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(app.screen, AgentForm), what="form closed")
    assert [a.name for a in app.agents_cache.values()] == [name]


async def send_in_new_chat(app, pilot, text: str) -> ChatScreen:
    """The first-run path: create an agent in the form, open a new session, type and send."""
    await create_agent(app, pilot)
    chat = await open_new_chat(app, pilot)
    await pilot.press(*text, "ctrl+j")
    return chat


async def test_create_send_stream_tool_call_quit_and_reopen(tmp_path, gw):
    bash = json.dumps({"command": "echo hello; echo $GH_TOKEN"})
    gw.push(stream(["Let me ", "look."], tool_calls=[tool_call("c1", "bash", bash)],
                   usage={"prompt_tokens": 100, "completion_tokens": 10}, cost=0.001),
            stream(["All ", "**good**", ".\n\n```sh\necho ok\n```\n"],
                   usage={"prompt_tokens": 200, "completion_tokens": 20}, cost=0.002))
    services = services_for(tmp_path, gw, save_state=True)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await send_in_new_chat(app, pilot, "what is here?")
        await wait_for(pilot, lambda: turn_status(app, "completed"), timeout=30, what="turn completed")
        await pilot.pause(0.2)
        kinds = [b.kind for b in chat.model.blocks]
        assert kinds == ["turn", "user", "assistant", "tool", "assistant"]
        view = chat.query_one(TranscriptView)
        tool = view.transcript.by_key["tool:c1"]
        assert "exit 0" in tool.title() and "echo hello" in tool.title() and tool.collapsed
        view.toggle(tool)  # expanded: its command and output in place of the one line
        out = entry_text(view, tool).split("\n")
        assert "hello" in out[2:] and SECRET not in "".join(out) and MASK in "".join(out)  # the sandbox saw it
        replies = [e for e in view.transcript.entries if e.kind == "assistant"]
        # The streamed text becomes Markdown block by block (the last block once the step ends).
        await wait_for(pilot, lambda: not replies[-1].streaming and all(p.markdown for p in replies[-1].parts),
                       what="the reply as Markdown")
        assert replies[-1].parts[0].text.startswith("All **good**.")
        assert "All good." in entry_text(view, replies[-1])  # rendered, not shown as typed
        status = last_turn_text(view)
        assert "done" in status and "300 in / 30 out" in status and "$0.0030" in status
        # The header follows the session: idle once the turn is done (its row is written just
        # after the journal's last event, which reaches the screen at once).
        await wait_for(pilot, lambda: chat.query_one("#title")._detail.startswith("idle · 330 tokens"),
                       what=f"header idle: {chat.query_one('#title')._detail!r}")
        # The turn's status line stays below its content.
        assert view.transcript.entries[-1].kind == "turn"
        assert chat.query_one("#draft", TextArea).text == ""
        await pilot.press(*"an unsent draft")
        session_id = chat.session_id
        await pilot.press("ctrl+q")
    assert app.state.screen == "chat" and app.state.session_id == session_id
    saved = (tmp_path / "state" / "lap-tui" / "ui-state.json").read_text()
    assert session_id in saved and "an unsent draft" in saved, saved

    app2 = LapApp(services_for(tmp_path, gw, save_state=True))
    async with app2.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app2.screen, ChatScreen), what=f"chat reopened {app2.state} {app2._notifications}")
        chat2 = app2.screen
        assert chat2.session_id == session_id
        # The draft is put back when the chat mounts, a moment after it is pushed.
        await wait_for(pilot, lambda: chat2.query("#draft") and chat2.query_one("#draft", TextArea).text
                       == "an unsent draft", what="the draft back")
        await wait_for(pilot, lambda: len(chat2.model.blocks) == 5, what="history")
        # esc leaves the draft, then goes back to the agent's sessions, then to the agents.
        await pilot.press("escape")
        assert isinstance(app2.screen, ChatScreen) and not chat2.query_one("#draft", TextArea).has_focus
        await pilot.press("escape")
        assert isinstance(app2.screen, SessionsScreen)


async def test_a_reply_turns_into_markdown_while_it_streams(tmp_path, gw):
    """Finished blocks render as Markdown before the reply ends; the open tail stays small."""
    head = ["# Plan\n\n", "Some **bold** ", "words.\n\n", "- one\n- two\n\n"]
    gw.push(stream(head + [f"tail{i} " for i in range(80)], delay=0.03))
    app = LapApp(services_for(tmp_path, gw))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await send_in_new_chat(app, pilot, "plan it")
        view = chat.query_one(TranscriptView)
        ticker = view._ticker
        await wait_for(pilot, lambda: ticker._active.is_set(), what="the frame tick runs while text streams")

        def replies() -> list:
            return [e for e in view.transcript.entries if e.kind == "assistant"]

        def early_markdown() -> bool:
            return turn_status(app, "running") and any(p.markdown and p.text.startswith("# Plan")
                                                       for r in replies() for p in r.parts)

        await wait_for(pilot, early_markdown, timeout=30, what="Markdown while the turn still runs")
        await wait_for(pilot, lambda: turn_status(app, "completed"), timeout=30, what="turn completed")
        reply = replies()[0]
        await wait_for(pilot, lambda: not reply.streaming and all(p.markdown for p in reply.parts),
                       what="all of it Markdown")
        # an idle chat costs no CPU: the frame tick stops once nothing streams
        await wait_for(pilot, lambda: not ticker._active.is_set(), what="the frame tick paused")
        assert "".join(p.text for p in reply.parts) == "".join(head) + "".join(f"tail{i} " for i in range(80))
        assert "Plan" in transcript_text(view) and "# Plan" not in transcript_text(view)


async def test_cancel_a_running_turn(tmp_path, gw):
    gw.push(stream([f"word{i} " for i in range(200)], delay=0.05))
    app = LapApp(services_for(tmp_path, gw))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await send_in_new_chat(app, pilot, "talk a lot")
        await wait_for(pilot, lambda: any(b.kind == "assistant" and "word3" in b.text for b in chat.model.blocks),
                       what="streaming")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: turn_status(app, "cancelled"), what="cancelled")
        reply = [b for b in chat.model.blocks if b.kind == "assistant"][0]
        assert not reply.streaming and "word199" not in reply.text


async def test_failed_turn_shows_its_reason_and_retries(tmp_path, gw):
    gw.push(error(400, "the prompt is too long"))
    app = LapApp(services_for(tmp_path, gw))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await send_in_new_chat(app, pilot, "hello")
        await wait_for(pilot, lambda: turn_status(app, "failed"), timeout=30, what="failed")
        status = last_turn_text(chat.query_one(TranscriptView))
        assert "failed" in status and "too long" in status and "^r retries" in status
        gw.push(stream(["recovered"]))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: turn_status(app, "completed"), timeout=30, what="retried")
        assert "recovered" in [b.text for b in chat.model.blocks if b.kind == "assistant"][-1]
        assert "failed" not in last_turn_text(chat.query_one(TranscriptView))


async def test_quitting_mid_turn_hands_the_turn_back_without_waiting(tmp_path, gw):
    """ctrl+q while a tool runs for ten minutes: the app exits at once. The turn was queued
    before the app opened (`lap-tui send` without --wait), so the app's standby worker drives
    it: the app used to wait, behind that worker's driver, for the whole turn. It is left
    unfinished at its checkpoint, not cancelled, for the next driver."""
    import asyncio

    from lap_tui.engine.services import build_engine
    from lap_tui.store import open_store
    from tests.conftest import make_session

    gw.push(stream([], tool_calls=[tool_call("c1", "bash", json.dumps({"command": "sleep 600"}))]))
    services = services_for(tmp_path, gw)
    store = await open_store(services.settings.database_url)
    try:
        session = await make_session(store)
        queuer = build_engine(services.settings, store)
        turn_id = await queuer.queue(session.id, "wait")
        await queuer.close()
    finally:
        await store.close()
    app = LapApp(services)

    async def run_and_quit() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.store is not None, what="the store")
            for _ in range(4800):  # a readiness wait: the standby worker, then the tool's sandbox
                if any(e.kind == "tool.started" for e in await app.store.read_events(session.id)):
                    break
                await pilot.pause(0.05)
            await pilot.press("ctrl+q")

    # Bounded only so that a regression fails instead of hanging for ten minutes.
    await asyncio.wait_for(run_and_quit(), 240)
    assert app.engine.handed_back == [turn_id]
    store = await open_store(services.settings.database_url)
    try:
        turn = await store.get_turn(turn_id)
        kinds = [e.kind for e in await store.read_events(session.id)]
    finally:
        await store.close()
    assert not turn.status.finished and "turn.cancelled" not in kinds and "tool.started" in kinds
