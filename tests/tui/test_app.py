"""Pilot tests of the shell: navigation, command line, filter, help, keymap, read-only,
sandbox actions, delete confirmations, safety of displayed text, and big sessions."""

from __future__ import annotations

import contextlib

from textual.widgets import Input, TextArea

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.agents import AgentsScreen
from lap_tui.tui.screens.chat import ChatScreen
from lap_tui.tui.screens.confirm import ConfirmScreen
from lap_tui.tui.screens.help import HelpScreen
from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen
from lap_tui.tui.screens.sandboxes import SandboxesScreen
from lap_tui.tui.screens.sessions import SessionsScreen
from lap_tui.tui.widgets.transcript import TranscriptView
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import (AGENT_ID, chat_open, SESSION_ID, FakeSandboxBackend, seed, seed_basic, seed_chat,
                                entry_text, seed_sandboxes, wait_for)


async def started(app, pilot):
    await wait_for(pilot, lambda: app.store is not None and app.agents_cache and app.engine is not None,
                   what="start-up")


async def test_agents_list_filter_and_command_line(services_factory):
    services = services_factory(models=["gpt-4o-mini"])
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        assert table.row_count == 2
        await pilot.press("slash", *"docs")
        assert table.row_count == 1 and table.get_row_at(0)[0] == "docs-writer"
        await pilot.press("escape")
        assert table.row_count == 2
        await pilot.press("colon", *"sand", "tab")
        assert app.screen.query_one(Input).value == ":sandboxes"
        await pilot.press("enter")
        assert isinstance(app.screen, SandboxesScreen)
        await pilot.press("colon", *"theme lap-light", "enter")
        assert app.theme == "lap-light" and app.state.theme == "lap-light"
        await pilot.press("colon", *"nonsense", "enter")
        assert any("unknown command" in n.message for n in app._notifications)
        await pilot.press("escape")
        assert isinstance(app.screen, AgentsScreen)
        await pilot.press("colon", *"sessions docs-writer", "enter")
        assert isinstance(app.screen, SessionsScreen) and app.screen.agent_id != AGENT_ID
        await pilot.press("colon", "q", "enter")
    assert app.return_code == 0


async def test_help_lists_active_keys_with_ids_and_remapping_works(services_factory):
    services = services_factory(keys={"agents.new": "c", "no.such.id": "x"})
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert any("no.such.id" in n.message for n in app._notifications)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2]: row[0] for row in app.screen.key_rows}
        assert ids["agents.new"] == "c" and ids["table.filter"] == "/" and "app.command_line" in ids
        await pilot.press("escape")
        await pilot.press("n")
        assert not isinstance(app.screen, AgentForm)  # n is no longer bound
        await pilot.press("c")
        assert isinstance(app.screen, AgentForm)


async def test_form_validates_inline_and_edits(services_factory):
    services = services_factory(models=["gpt-4o-mini", "gpt-4o"])
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("e")
        form = app.screen
        assert isinstance(form, AgentForm) and form.query_one("#f-name", Input).value == "code-reviewer"
        assert "2 models from the gateway" in str(form.query_one("#model-hint").render())
        for field, bad, why in (("cpu", "lots", "CPU quantity"), ("memory", "1 GB", "memory quantity"),
                                ("env", "9BAD", "invalid"), ("team", "Team!", "may not contain")):
            form.query_one(f"#f-{field}", Input).value = bad
            await pilot.pause()
            err = form.query_one(f"#err-{field}")
            assert err.has_class("-shown") and why in str(err.render()), field
        form.query_one("#f-cpu", Input).value = "500m"
        form.query_one("#f-memory", Input).value = "2Gi"
        form.query_one("#f-env", Input).value = "GH_TOKEN NPM_TOKEN"
        form.query_one("#f-team", Input).value = "platform"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="saved")
        agent = await app.store.get_agent_by_id(AGENT_ID)
        assert (agent.sandbox.cpu, agent.sandbox.memory, agent.sandbox.env) == ("500m", "2Gi",
                                                                               ("GH_TOKEN", "NPM_TOKEN"))


async def test_delete_agent_asks_and_says_what_goes(services_factory):
    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "2 sessions" in str(app.screen.query_one("#detail").render())
        await pilot.press("n")
        assert AGENT_ID in app.agents_cache
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: AGENT_ID not in app.agents_cache, what="deleted")
        assert await app.store.count_sessions(AGENT_ID) == 0


class RecordingEngine:
    """The engine's retry, recorded (and the journal followed as the app's watch-only stand-in does)."""

    def __init__(self, store) -> None:
        from lap_tui.tui.observer import JournalObserver

        self._observer = JournalObserver(store)
        self.retried: list[str] = []

    def watch(self, session_id, *, after_seq=0):
        return self._observer.watch(session_id, after_seq=after_seq)

    async def retry(self, turn_id: str) -> str:
        self.retried.append(turn_id)
        return turn_id


async def _press_retry(app, pilot) -> str:
    """ctrl+r on the chat once the engine is in, then wait until every engine call it started
    has finished: a refused retry then provably called nothing."""
    await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.engine_ready.is_set()
                   and app.screen.model.last_failed_turn() is not None, what="chat with a failed turn")
    failed = app.screen.model.last_failed_turn().turn_id
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: all(w.is_finished for w in app.workers if w.group == "chat-engine"),
                   what="engine calls")
    return failed


async def test_read_only_changes_nothing(services_factory):
    engines: list[RecordingEngine] = []
    services = services_factory(engine=lambda store: engines.append(RecordingEngine(store)) or engines[-1])
    seed(services, seed_chat)
    app = LapApp(services, session=SESSION_ID)  # the control: ctrl+r retries when not read-only
    async with app.run_test(size=(80, 24)) as pilot:
        failed = await _press_retry(app, pilot)
        await wait_for(pilot, lambda: engines[-1].retried == [failed], what="the retry")
    app = LapApp(services, read_only=True, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        assert app.screen.query_one("#draft", TextArea).read_only
        await _press_retry(app, pilot)  # retry is hidden and refused
        assert engines[-1].retried == []
        await pilot.press("escape", "escape", "escape")  # leave the draft, the chat, the sessions
        await pilot.press("n", "d")
        assert isinstance(app.screen, AgentsScreen) and len(app.agents_cache) == 2
        assert "READ-ONLY" in str(app.screen.query_one("StatusBar").render())


async def test_chat_history_is_rendered_safely_and_copyable(services_factory):
    services = services_factory()
    seed(services, seed_chat)
    app = LapApp(services, session=SESSION_ID)
    copied = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.copy_to_clipboard = copied.append
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query(TranscriptView) and any(
            e.kind == "tool" for e in app.screen.query_one(TranscriptView).transcript.entries), what="history")
        chat = app.screen
        view = chat.query_one(TranscriptView)
        tool = next(e for e in view.transcript.entries if e.kind == "tool")
        assert "exit 1" in tool.title() and tool.collapsed
        view.toggle(tool)
        assert "\x1b" not in entry_text(view, tool) and "FAILED" in entry_text(view, tool)
        view.toggle(tool)
        assert chat.model.last_failed_turn().reason == "gateway: 429 rate limited"
        await pilot.press("ctrl+l")  # into the messages; the last one is selected
        await pilot.press("up")
        assert view.selected is not None and view.selected.kind == "assistant"
        await pilot.press("y")
        assert copied[-1] == "assert done.wait(1)\n"
        await pilot.press("c")
        assert copied[-1].startswith("It races on")
        await pilot.press("up", "enter")
        assert not tool.collapsed


async def test_big_session_mounts_only_the_last_page_and_pages_back(services_factory):
    services = services_factory()

    async def big(store):
        await seed_basic(store)
        for i in range(600):  # 1,200 messages; the benchmark does 10,000
            t = f"t{i:05d}"
            await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
            await store.append(SESSION_ID, "user.message", {"text": f"question {i}"}, turn_id=t)
            await store.append(SESSION_ID, "model.message", {"text": f"answer {i}"}, turn_id=t)
            await store.append(SESSION_ID, "turn.completed", {}, turn_id=t)

    seed(services, big)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query(TranscriptView)
                       and app.screen.query_one(TranscriptView).transcript.entries, what="history")
        log = app.screen.query_one(TranscriptView)

        def user_blocks() -> list:
            return [e.block for e in log.transcript.entries if e.kind == "user"]

        users = user_blocks()
        # Only the newest turns that fill the screen are mounted (not the whole page of 8).
        assert 2 <= len(users) < 8 and users[-1].text == "question 599"
        assert log.has_older
        await pilot.pause(0.2)
        assert log.following and log.virtual_size.height > log.size.height  # the view is full

        async def to_top(n: int) -> None:
            log.scroll_to(y=1, animate=False)
            await pilot.pause(0.1)
            log.scroll_to(y=0, animate=False)
            await wait_for(pilot, lambda: len(user_blocks()) == n, what=f"{n} messages")

        await to_top(8)  # the rest of the first page, held without another read
        assert user_blocks()[0].text == "question 592"
        await to_top(16)  # then the next page from the store
        assert user_blocks()[0].text == "question 584"
        assert not log.following


async def test_sandbox_table_is_live_and_actions_reach_the_backend(services_factory):
    backend = FakeSandboxBackend()
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.sandboxes is not None
                       and app.screen.query_one(LapTable).row_count == 4, what="sandboxes")
        screen = app.screen
        table = screen.query_one(LapTable)
        assert table.get_cell("s-000000000000", "agent") == "code-reviewer"
        assert table.get_cell("s-000000000000", "age") == "3h"
        table.move_cursor(row=table.get_row_index("s-000000000000"))
        await pilot.press("s")
        await wait_for(pilot, lambda: table.get_cell("s-000000000000", "phase") == "Suspended", what="suspended")
        await pilot.press("r")
        await wait_for(pilot, lambda: table.get_cell("s-000000000000", "ready") == "yes", what="resumed")
        app.suspend = contextlib.nullcontext  # the headless driver cannot hand the terminal over
        await pilot.press("x")
        await wait_for(pilot, lambda: ("shell", "s-000000000000") in backend.calls, what="shell")
        await pilot.press("ctrl+d")  # k9s: d describes, ctrl+d deletes
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: "s-000000000000" not in table.rows, what="deleted row")
        assert [c[0] for c in backend.calls] == ["suspend", "resume", "shell", "delete"]
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxDetailScreen), what="detail")
        await wait_for(pilot, lambda: app.screen.query_one("Log").line_count >= 2, what="logs")
        assert all("\x1b" not in line for line in app.screen.query_one("Log").lines)
