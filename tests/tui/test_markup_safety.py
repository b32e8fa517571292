"""Untrusted text on every screen: titles, names, models, prompts, errors and tool output full of
Rich markup and terminal escapes. Nothing may crash (MarkupError), become an action
(`[@click=app.quit]`) or reach the terminal as an escape sequence; the text itself stays
visible, literally."""

from __future__ import annotations

import json
import sqlite3

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.session import Session
from lap_tui.store.base import SandboxRecord
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.agents import AgentsScreen
from lap_tui.tui.screens.chat import ChatScreen
from lap_tui.tui.screens.confirm import ConfirmScreen
from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen
from lap_tui.tui.screens.sessions import SessionsScreen
from lap_tui.tui.widgets.transcript import TranscriptView
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import FROZEN, FakeSandboxBackend, make_services, seed, wait_for

ESC = "\x1b"
OSC_TITLE = f"{ESC}]0;PWNED-TITLE\x07"
MARKUP = "[/x] [@click=app.quit]click me[/] [b]"
EVIL = f"{MARKUP}{OSC_TITLE}{ESC}[2J\x9b31m\u202eevil"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\u202e")
AGENT_ID = "a0000000000000000000000000000009"
SESSION_ID = "5e550000000000000000000000000009"
TURN_ID = "70000000000000000000000000000009"
SANDBOX_ID = "s-5e5500000000"


async def seed_evil(store) -> None:
    # The store is shared: any process can write what it likes into these rows.
    await store.create_agent(Agent(id=AGENT_ID, name="evil", team="platform", model=f"gpt-{EVIL}",
                                   system_prompt=f"prompt {EVIL}", sandbox=SandboxSettings()))
    await store.create_session(Session(id=SESSION_ID, agent_id=AGENT_ID, title=f"title {EVIL}"))
    a = store.append
    await a(SESSION_ID, "turn.queued", {}, turn_id=TURN_ID)
    await a(SESSION_ID, "user.message", {"text": f"user {EVIL}"}, turn_id=TURN_ID)
    await a(SESSION_ID, "turn.started", {"model": f"gpt-{EVIL}"}, turn_id=TURN_ID)
    await a(SESSION_ID, "model.requested", {}, turn_id=TURN_ID)
    await a(SESSION_ID, "model.message", {"text": f"reply {EVIL}", "tool_calls": [
        {"id": "c1", "name": f"bash{MARKUP}", "arguments": json.dumps({"command": f"echo {EVIL}"})}]},
        turn_id=TURN_ID)
    await a(SESSION_ID, "tool.started", {"tool_call_id": "c1", "name": "bash"}, turn_id=TURN_ID)
    await a(SESSION_ID, "tool.finished", {"tool_call_id": "c1", "output": f"out {EVIL}", "exit_code": 1,
                                          "truncated": False}, turn_id=TURN_ID)
    await a(SESSION_ID, "turn.failed", {"reason": f"gateway said {EVIL}"}, turn_id=TURN_ID)
    await store.put_sandbox(SandboxRecord(id=SANDBOX_ID, backend="local", team=f"team{MARKUP}", phase="Running",
                                          agent_id=AGENT_ID, session_id=SESSION_ID, ready=True, restarts=0,
                                          created_at=FROZEN, message=f"msg {EVIL}"))


def screen_text(app) -> str:
    """What the app would write to the terminal, as text (segments of every line)."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


def assert_safe(app, what: str) -> str:
    text = screen_text(app)
    bad = [repr(c) for c in FORBIDDEN if c in text]
    assert not bad, f"{what}: {bad} reached the terminal"
    assert "PWNED-TITLE" not in text, f"{what}: the OSC's payload is shown as text"
    return text


def no_actions(table: LapTable) -> None:
    for row in table._data.values():
        for cell in row.values():
            spans = getattr(cell, "spans", [])
            assert not any("@click" in str(s.style) for s in spans), cell


async def test_lists_show_markup_and_escapes_as_plain_text(services_factory):
    services = services_factory(sandboxes=FakeSandboxBackend())
    seed(services, seed_evil)
    app = LapApp(services)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.agents_loaded and isinstance(app.screen, AgentsScreen), what="agents")
        await pilot.pause()
        text = assert_safe(app, "agents")
        assert "gpt-[/x] [@click=app.quit]click me[/]" in text  # the model, literally
        no_actions(app.screen.query_one(LapTable))

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen)
                       and app.screen.query_one(LapTable).row_count == 1, what="sessions")
        await pilot.pause()
        text = assert_safe(app, "sessions")
        assert "title [/x]" in text
        no_actions(app.screen.query_one(LapTable))
        await pilot.click(LapTable, offset=(60, 1))  # where the title's fake link would be
        await pilot.pause()
        assert app.return_code is None and app.is_running

        await pilot.press("colon", *"sandboxes", "enter")
        await wait_for(pilot, lambda: app.screen.query(LapTable) and
                       app.screen.query_one(LapTable).row_count == 1, what="sandboxes")
        await pilot.pause()
        assert "team[/x]" in assert_safe(app, "sandboxes")
        app.push_screen(SandboxDetailScreen(SANDBOX_ID))
        await wait_for(pilot, lambda: "team[/x]" in screen_text(app), what="sandbox detail")
        assert_safe(app, "sandbox detail")


async def test_chat_shows_prompts_replies_tools_and_errors_literally(services_factory):
    services = services_factory()
    seed(services, seed_evil)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query(TranscriptView) and {
            "turn", "tool"} <= {e.kind for e in app.screen.query_one(TranscriptView).transcript.entries}, what="chat")
        await pilot.pause()
        text = assert_safe(app, "chat")
        assert "gateway said [/x]" in text and "title [/x]" in text and "user [/x]" in text
        assert "reply [/x] [@click=app.quit]click me[/]" in text  # Markdown shows markup as text
        view = app.screen.query_one(TranscriptView)
        view.toggle(next(e for e in view.transcript.entries if e.kind == "tool"))
        await pilot.pause()
        assert "out [/x]" in assert_safe(app, "tool output")


async def test_form_errors_notifications_and_edit_fields_are_never_markup(services_factory):
    services = services_factory(models=[f"m{EVIL}", "[/bad-model]"])
    seed(services, seed_evil)
    app = LapApp(services)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: app.agents_loaded and app.models, what="start-up")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        form = app.screen
        form.query_one("#f-name").value = "x[/a]"
        await pilot.pause()
        err = form.query_one("#err-name")
        assert err.has_class("-shown") and "x[/a]" in str(err.render())
        assert "[/bad-model]" in str(form.query_one("#model-hint").render())
        assert_safe(app, "new agent form")
        await pilot.press("escape")  # it asks before discarding what was typed
        await wait_for(pilot, lambda: isinstance(app.screen, (AgentsScreen, ConfirmScreen)), what="leaving")
        if isinstance(app.screen, ConfirmScreen):
            await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="back")

        app.notify(f"boom {EVIL}", title=f"[/t]{OSC_TITLE}", severity="error")
        await wait_for(pilot, lambda: "boom [/x]" in screen_text(app), what="the notification, literally")
        assert_safe(app, "notification")

        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="edit form")
        model = app.screen.query_one("#f-model").value
        assert model.startswith("gpt-[/x]") and not any(c in model for c in FORBIDDEN)
        assert_safe(app, "edit form")
        await pilot.press("escape")

        app.push_screen(ConfirmScreen(f"Delete {EVIL}?", f"detail {EVIL}"))
        await pilot.pause()
        assert "Delete [/x]" in assert_safe(app, "confirm")
    assert app.return_code in (None, 0)


def test_a_crash_prints_no_locals(tmp_path):
    """Textual prints a crash with show_locals=True: a local holding a key would reach the
    screen. `_fatal_error` is what Textual 8.2.8 calls for an unhandled exception."""
    app = LapApp(make_services(tmp_path))
    app.bell = lambda: None
    app._close_messages_no_wait = lambda: None

    def handler() -> None:
        api_key = "-".join(("sk", "local", "secret"))  # noqa: F841 - what a traceback's locals show
        raise RuntimeError("crash")

    try:
        handler()
    except RuntimeError:
        app._fatal_error()
    rendered = "".join(seg.text for r in app._exit_renderables for seg in r.segments)
    assert "RuntimeError" in rendered and "crash" in rendered
    assert "sk-local-secret" not in rendered


async def test_the_palette_shows_a_stored_name_literally(services_factory):
    """The command palette parses its titles as markup: an agent row named `[/x]` (any process
    can write the store) crashed it."""
    from textual.command import CommandPalette

    services = services_factory()
    seed(services, seed_evil)
    # The store validates names on the way in; a teammate's process (or an older lap-tui) may not.
    con = sqlite3.connect(services.settings.database_url.split("://", 1)[1])
    con.execute("UPDATE agents SET name = ? WHERE id = ?", ("ev[/x]il", AGENT_ID))
    con.commit()
    con.close()
    app = LapApp(services)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.agents_loaded and isinstance(app.screen, AgentsScreen), what="agents")
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"Open")
        await wait_for(pilot, lambda: "Agents: Open ev[/x]il" in screen_text(app), what="the name, literally")
        assert_safe(app, "palette")
