"""Pilot tests of the first-day defects of issue 10 (the app's side): keys in one burst applied in
order, the agents list kept live, reopening exactly, and the smaller items."""

from __future__ import annotations

import pytest
from textual import events
from textual.widgets import Input, TextArea

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.chat import ChatScreen
from tests.tui.conftest import SESSION_ID, seed, seed_basic, seed_chat, wait_for


def burst(app: LapApp, keys: str | list[str]) -> None:
    """Put every key in the app's queue before any is handled: what one read of the terminal
    gives Textual when keys come in a burst (a paste, tmux send-keys, a fast typist)."""
    from textual.keys import _character_to_key

    for k in keys:
        if len(k) == 1:
            app.post_message(events.Key(k if k.isalnum() else _character_to_key(k), k))
        else:
            app.post_message(events.Key(k, None))


async def started(app, pilot):
    await wait_for(pilot, lambda: app.store is not None and app.agents_loaded and app.engine is not None,
                   what="start-up")


async def test_a_burst_with_tab_fills_each_field_in_turn(services_factory):
    app = LapApp(services_factory())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        form = app.screen
        name, team = form.query_one("#f-name", Input), form.query_one("#f-team", Input)
        await wait_for(pilot, lambda: name.has_focus, what="name focused")
        team.value = ""
        burst(app, ["a", "b", "c", "tab", "x", "y", "z"])
        await wait_for(pilot, lambda: team.value == "xyz", what=f"team typed: {name.value!r} / {team.value!r}")
        assert name.value == "abc"


async def test_a_burst_from_the_list_reaches_the_screen_it_opens(services_factory):
    """`n` pushes the form; the letters typed with it go into its first field, not to the list."""
    app = LapApp(services_factory())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        burst(app, ["n", "q", "r"])
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm)
                       and app.screen.query_one("#f-name", Input).value == "qr", what="name typed")


async def test_text_then_send_in_one_burst_sends_all_of_it(services_factory):
    services = services_factory()
    seed(services, seed_chat)
    app = LapApp(services, session=SESSION_ID)
    sent: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="chat")
        chat = app.screen
        draft = chat.query_one("#draft", TextArea)
        await wait_for(pilot, lambda: draft.has_focus, what="draft focused")
        chat._send = lambda text: sent.append(text)  # what the send action read from the draft
        burst(app, list("Summarise the repo") + ["ctrl+j"])
        await wait_for(pilot, lambda: sent, what=f"a send (draft: {draft.text!r})")
        assert sent == ["Summarise the repo"]


# -- 2: the agents list is live
async def test_agents_made_elsewhere_appear_and_go_and_age_ticks(services_factory, monkeypatch):
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.clock import epoch_from_iso
    from lap_tui.tui.screens.agents import AgentsScreen
    from lap_tui.tui.widgets.table import LapTable
    from tests.tui.conftest import FROZEN, frozen_store_clock

    services = services_factory(deterministic=False)
    with frozen_store_clock(monkeypatch):
        seed(services, seed_basic)
    clock = [epoch_from_iso(FROZEN) + 30]
    services.clock = lambda: clock[0]
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        assert isinstance(app.screen, AgentsScreen) and table.row_count == 2

        async def other_process(fn):
            store = await services.open_store()  # a second connection, as the CLI would open
            try:
                return await fn(store)
            finally:
                await store.close()

        await other_process(lambda s: s.create_agent(Agent(id="a" * 32, name="made-by-cli", team="default", model="m")))
        await wait_for(pilot, lambda: "a" * 32 in table.rows, what="the agent made elsewhere listed")
        await other_process(lambda s: s.delete_agent("a0000000000000000000000000000002"))
        await wait_for(pilot, lambda: "a0000000000000000000000000000002" not in table.rows,
                       what="the agent deleted elsewhere gone")
        before = table.get_cell("a0000000000000000000000000000001", "age")
        clock[0] += 3600 * 5
        await wait_for(pilot, lambda: table.get_cell("a0000000000000000000000000000001", "age") != before,
                       what="AGE ticks")


# -- 4: reopening exactly
async def seed_long_chat(store, turns: int = 40) -> None:
    await seed_basic(store)
    for i in range(turns):
        t = f"7{i:031d}"
        await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
        await store.append(SESSION_ID, "user.message", {"text": f"question {i}"}, turn_id=t)
        await store.append(SESSION_ID, "turn.started", {}, turn_id=t)
        await store.append(SESSION_ID, "model.message", {"text": f"answer {i}\n\n- item a\n- item b\n\nend {i}"},
                           turn_id=t)
        await store.append(SESSION_ID, "turn.completed", {}, turn_id=t)


async def reopened_from_end(services, state) -> tuple[float, bool]:
    from lap_tui.tui.widgets.transcript import TranscriptView

    app = LapApp(services, state=state)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(),
                       what="the chat shown")
        log = app.screen.query_one(TranscriptView)
        await pilot.pause(0.3)  # any late layout change would move it: it must not
        return log.max_scroll_y - log.scroll_y, log.following


@pytest.mark.parametrize("from_end", [36, 72.9, 150, 300])
async def test_a_chat_reopens_exactly_that_far_above_the_end(services_factory, from_end):
    """One page or more above the end reopened at the bottom (or clamped to the first page)."""
    from lap_tui.tui.state import UiState

    services = services_factory()
    seed(services, seed_long_chat)
    state = UiState(screen="chat", session_id=SESSION_ID, chat_follow=False, chat_scroll_from_end=from_end)
    got, following = await reopened_from_end(services, state)
    assert got == round(from_end) and not following


async def test_one_line_above_the_end_is_not_the_end(services_factory):
    from lap_tui.tui.state import UiState
    from lap_tui.tui.widgets.transcript import TranscriptView

    services = services_factory()
    seed(services, seed_long_chat)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(), what="chat")
        log = app.screen.query_one(TranscriptView)
        await wait_for(pilot, lambda: log.max_scroll_y > 5, what="laid out")
        log.scroll_to(y=log.max_scroll_y - 1, animate=False, immediate=True)
        app.screen.capture_state()
        assert not app.state.chat_follow and app.state.chat_scroll_from_end == 1.0
    got, _ = await reopened_from_end(services, UiState(screen="chat", session_id=SESSION_ID, chat_follow=False,
                                                       chat_scroll_from_end=1.0))
    assert got == 1


@pytest.mark.parametrize("kw", [{"read_only": True}, {"view": "sandboxes"}])
async def test_read_only_and_view_runs_keep_a_state_of_their_own(services_factory, kw):
    from lap_tui.tui.state import UiState, load_state, save_state, state_path

    services = services_factory(save_state=True)
    seed(services, seed_chat)
    main = state_path(services.settings.state_dir)
    save_state(main, UiState(screen="chat", session_id=SESSION_ID, drafts={SESSION_ID: "mine"}))
    before = main.read_bytes()
    app = LapApp(services, **kw)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        app.note("screen", "agents")
        await app.action_quit()
    assert main.read_bytes() == before  # the working app reopens where it was
    assert app.state_path != main and load_state(app.state_path).screen == "agents"


# -- 6: ctrl+l lands where reading continues
async def test_ctrl_l_from_the_draft_keeps_the_end_of_a_long_reply_in_view(services_factory):
    from lap_tui.tui.widgets.transcript import TranscriptView

    async def long_reply(store):
        await seed_basic(store)
        t = "7" * 32
        await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
        await store.append(SESSION_ID, "user.message", {"text": "write a lot"}, turn_id=t)
        await store.append(SESSION_ID, "model.message", {"text": "\n\n".join(f"paragraph {i}" for i in range(120))},
                           turn_id=t)
        await store.append(SESSION_ID, "turn.completed", {}, turn_id=t)

    services = services_factory()
    seed(services, long_reply)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(), what="chat")
        log = app.screen.query_one(TranscriptView)
        await wait_for(pilot, lambda: log.max_scroll_y > 100 and log.scroll_y >= log.max_scroll_y, what="at the end")
        await pilot.press("ctrl+l")
        assert log.has_focus
        await pilot.pause(0.2)
        assert log.scroll_y >= log.max_scroll_y - 1, (log.scroll_y, log.max_scroll_y)


# -- 9: enter in the keys bar and `?`; `?` lists the app's keys, grouped and ordered
@pytest.mark.parametrize("view,id_", [("agents", "agents.open"), ("sessions", "sessions.open"),
                                      ("sandboxes", "sandboxes.open")])
async def test_enter_is_listed_and_help_shows_the_apps_keys_in_order(services_factory, view, id_):
    from lap_tui.tui.keymap import KEYS
    from lap_tui.tui.screens.help import HelpScreen
    from lap_tui.tui.widgets.keys_bar import KeysBar

    from tests.tui.conftest import seed_sandboxes

    services = services_factory()
    seed(services, seed_sandboxes)
    app = LapApp(services, view=view)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: getattr(app.screen, "VIEW", "") == view, what=view)
        bar = app.screen.query_one(KeysBar)
        want = "⏎ " + KEYS[id_].description
        await wait_for(pilot, lambda: str(bar.render()).startswith(want) or want in str(bar.render()),
                       what=f"enter in the keys bar: {bar.render()}")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = [r[2] for r in app.screen.key_rows]
        assert id_ in ids and all(i in KEYS for i in ids)  # no Textual generic keys
        f_keys = [i for i in ids if i in ("app.agents", "app.sessions", "app.sandboxes")]
        assert f_keys == ["app.agents", "app.sessions", "app.sandboxes"]
        assert ids.index(id_) < ids.index("app.quit")  # the screen's own keys before the global ones
        # enter still opens
        await pilot.press("escape")
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "VIEW", view) != view, what="enter opened the row")


# -- 11: a failed command stays where it was
async def test_sessions_of_an_unknown_agent_says_so_and_stays(services_factory):
    from lap_tui.tui.screens.sandboxes import SandboxesScreen

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen), what="sandboxes")
        screen = app.screen
        await app.run_command("sessions nope")
        app.go("nowhere")
        await pilot.pause()
        assert app.screen is screen
        assert any("no agent 'nope'" in n.message for n in app._notifications)


# -- 13: the header says what the journal says
async def test_the_header_says_running_while_the_turn_runs(services_factory):
    from lap_tui.domain.session import SessionStatus
    from lap_tui.tui.widgets.title_bar import TitleBar

    async def running(store):
        await seed_basic(store)
        t = "7" * 32
        await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
        await store.append(SESSION_ID, "user.message", {"text": "go"}, turn_id=t)
        await store.append(SESSION_ID, "turn.started", {}, turn_id=t)
        await store.append(SESSION_ID, "model.requested", {}, turn_id=t)
        await store.append(SESSION_ID, "model.delta", {"text": "streaming…"}, turn_id=t)
        await store.set_session_status(SESSION_ID, SessionStatus.QUEUED)  # the row lags behind

    services = services_factory()
    seed(services, running)
    app = LapApp(services, session=SESSION_ID, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(), what="chat")
        title = app.screen.query_one(TitleBar)
        await wait_for(pilot, lambda: title._detail.startswith("running"), what=f"running: {title._detail}")


# -- 14: an unreachable store is explained where the list would be, and retried
async def test_an_unreachable_postgres_is_explained_and_retried(services_factory):
    from textual.widgets import Static

    from lap_tui.store import open_store
    from lap_tui.tui.widgets.table import LapTable

    services = services_factory()
    seed(services, seed_basic)
    reachable = [False]
    opened = services.open_store

    async def open_() -> object:
        if not reachable[0]:  # a real connection attempt to a port nothing listens on
            return await open_store("postgresql://lap@127.0.0.1:1/lap")
        return await opened()

    services.open_store = open_
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        problem = screen.query_one("#store-problem", Static)
        await wait_for(pilot, lambda: problem.display and "cannot reach PostgreSQL" in str(problem.render()),
                       what="the reason shown")
        shown = str(problem.render())
        assert "Fix: start the server" in shown and "Trying again in" in shown
        assert not screen.query_one(LapTable).display
        assert "opening the store" not in screen.query_one("#title")._detail
        reachable[0] = True
        await wait_for(pilot, lambda: app.store is not None and screen.query_one(LapTable).row_count == 2,
                       what="the list once the store opens")
        assert not problem.display and screen.query_one(LapTable).display


# -- 15: cosmetics
@pytest.mark.parametrize("streamed", [False, True])
def test_a_one_line_reply_takes_one_line(streamed):
    """No empty bar lines under it: neither the last block's margin nor an empty note."""
    from lap_tui.tui.chat_model import Block
    from lap_tui.tui.safety import Sanitiser
    from lap_tui.tui.transcript_model import Transcript
    from tests.tui.test_defects import feed

    t = Transcript(Sanitiser(), {})
    block = Block(key="assistant:1", kind="assistant", turn_id="t", streaming=streamed,
                  text="" if streamed else "Hello! One line.")
    e = t.add(block)
    if streamed:
        feed(t, block, e, "Hello! One line.", size=4, tick_every=8)
        block.streaming = False
        e.finish()
        t.changed(e)
    assert [r.rstrip() for r in t.text_rows()] == ["", "Hello! One line."]  # its margin, its line


async def test_plurals_and_a_cancelled_turn_said_once(services_factory):
    from lap_tui.tui.chat_model import Block
    from lap_tui.tui.formatting import plural
    from lap_tui.tui.transcript_model import Transcript

    assert plural(1, "model") == "1 model" and plural(1, "sandbox", "sandboxes") == "1 sandbox"
    assert plural(3, "sandbox", "sandboxes") == "3 sandboxes"
    services = services_factory(models=["only-one"])
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: app.health["gateway"][0] == "ok", what="gateway")
        assert app.health["gateway"][1] == "1 model"
        t = Transcript(app.sanitiser, {})
        t.extend([Block(key="turn:t", kind="turn", turn_id="t", status="cancelled", reason="cancelled by the user")])
        assert [r.rstrip() for r in t.text_rows()] == ["■ cancelled by the user"]


async def test_the_filter_keeps_the_title_with_its_count_and_esc_clears_a_kept_filter(services_factory):
    from lap_tui.tui.screens.agents import AgentsScreen
    from lap_tui.tui.widgets.filter_bar import FilterBar
    from lap_tui.tui.widgets.table import LapTable
    from lap_tui.tui.widgets.title_bar import TitleBar

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        screen = app.screen
        title, bar, table = screen.query_one(TitleBar), screen.query_one(FilterBar), screen.query_one(LapTable)
        await pilot.press("slash", *"docs")
        await wait_for(pilot, lambda: table.row_count == 1, what="filtered")
        assert bar.region.y > title.region.y and title.region.height == 1  # the title stays in view
        assert "1 of 2 match /docs" in str(title.render()).replace("\xa0", " ")
        await pilot.press("enter")  # kept
        assert table.has_focus and table.row_count == 1 and bar.display
        await pilot.press("escape")  # on the table: clears the kept filter, stays
        await wait_for(pilot, lambda: table.row_count == 2, what="cleared")
        assert app.screen is screen and isinstance(screen, AgentsScreen) and not bar.display


async def test_an_unchecked_box_is_empty_and_mono_has_no_hues(services_factory):
    from rich.color import Color as RichColor

    from lap_tui.tui.screens.agent_form import AgentForm
    from lap_tui.tui.widgets.check import Check
    from lap_tui.tui.widgets.status_bar import StatusBar

    services = services_factory()
    app = LapApp(services)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        app.theme = "lap-mono"
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        box = app.screen.query_one("#f-network", Check)
        assert not box.value and "X" not in str(box.render())
        box.value = True
        assert "X" in str(box.render())
        await wait_for(pilot, lambda: app.health["store"][0] == "ok", what="store ok")
        bar = app.screen.query_one(StatusBar)
        text = bar._text(app.health)
        dots = [s for s in text.spans if text.plain[s.start:s.end].startswith("●")]
        assert dots
        for span in dots:
            color = span.style.color if hasattr(span.style, "color") else RichColor.parse(str(span.style))
            r, g, b = color.get_truecolor()
            assert r == g == b, f"a hue in lap-mono: {color}"
        prompt = app.screen.query_one("#f-prompt")
        name = app.screen.query_one("#f-name")
        assert prompt.content_region.x == name.content_region.x  # aligned with the other fields
        assert prompt.styles.background.a > 0 and prompt.placeholder


# -- 16: rough edges
async def test_a_newly_saved_agent_is_selected(services_factory):
    from lap_tui.tui.screens.agents import AgentsScreen
    from lap_tui.tui.widgets.table import LapTable

    services = services_factory(models=["gpt-test"])
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        app.screen.query_one("#f-name", Input).value = "zz-new"
        app.screen.query_one("#f-model", Input).value = "gpt-test"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="back on the list")
        table = app.screen.query_one(LapTable)
        new = next(a.id for a in app.agents_cache.values() if a.name == "zz-new")
        await wait_for(pilot, lambda: table.selected_key() == new, what="the new agent selected")


async def test_read_only_keys_say_so_and_are_not_offered(services_factory):
    from lap_tui.tui.screens.agents import AgentsScreen
    from lap_tui.tui.widgets.keys_bar import KeysBar

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        screen = app.screen
        assert "New" not in str(screen.query_one(KeysBar).render())
        for key in ("n", "e", "d"):
            before = len(app._notifications)
            await pilot.press(key)
            await wait_for(pilot, lambda: len(app._notifications) > before, what=f"{key} says something")
            assert "read-only" in list(app._notifications)[-1].message and app.screen is screen
        assert isinstance(app.screen, AgentsScreen)


async def test_theme_tab_cycles(services_factory):
    from lap_tui.tui.widgets.command_line import CommandLine

    app = LapApp(services_factory())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("colon", *"theme ")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandLine), what="command line")
        inp = app.screen.query_one(Input)
        seen = []
        for _ in range(3):
            await pilot.press("tab")
            seen.append(inp.value)
        assert seen[0].startswith(":theme ") and len(set(seen)) == 3, seen
        assert seen[:3] == [":theme " + n for n in app.theme_names()[:3]]


async def test_chat_retries_a_cancelled_turn_sets_a_title_and_offers_its_actions(services_factory):
    from lap_tui.tui.widgets.title_bar import TitleBar

    async def cancelled(store):
        await seed_basic(store)
        t = "7" * 32
        await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
        await store.append(SESSION_ID, "user.message", {"text": "run the long job"}, turn_id=t)
        await store.append(SESSION_ID, "turn.started", {}, turn_id=t)
        await store.append(SESSION_ID, "turn.cancelled", {"reason": "cancelled by the user"}, turn_id=t)

    services = services_factory()
    seed(services, cancelled)
    app = LapApp(services, session=SESSION_ID)
    sent: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(), what="chat")
        chat = app.screen
        chat._send = lambda text: sent.append(text)
        await pilot.press("ctrl+r")
        assert sent == ["run the long job"]
        names = [c.title for c in chat.palette_commands()]
        assert {"Chat: Send", "Chat: Cancel turn", "Chat: Retry", "Chat: Set title"} <= set(names)
        await app.run_command("title nightly flake hunt")
        await wait_for(pilot, lambda: "nightly flake hunt" in chat.query_one(TitleBar)._title, what="title")
        s = await app.store.get_session(SESSION_ID)
        assert s.title == "nightly flake hunt"


async def test_the_form_asks_before_discarding_and_warns_as_typed(services_factory):
    from lap_tui.tui.screens.agents import AgentsScreen
    from lap_tui.tui.screens.confirm import ConfirmScreen

    services = services_factory(models=["gpt-4o-mini"])
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: app.models == ["gpt-4o-mini"], what="the gateway's models")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        form = app.screen
        await pilot.press("escape")  # nothing typed: leaves at once
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="left")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="form")
        form = app.screen
        await pilot.press(*"docs-writer")  # taken in team default
        err = form.query_one("#err-name")
        await wait_for(pilot, lambda: "already exists" in str(err.render()) and err.display, what="duplicate said")
        form.query_one("#f-team", Input).value = "other-team"  # free in another team
        await wait_for(pilot, lambda: not err.display, what="duplicate cleared")
        form.query_one("#f-model", Input).value = "gpt-5-typo"
        merr = form.query_one("#err-model")
        await wait_for(pilot, lambda: "not served by the gateway" in str(merr.render()) and merr.display,
                       what="unknown model said")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("ctrl+s again" in n.message for n in app._notifications),
                       what="warned at save")
        assert app.screen is form and all(a.model != "gpt-5-typo" for a in app.agents_cache.values())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="asked before discarding")
        await pilot.press("n")
        assert app.screen is form and form.query_one("#f-name", Input).value == "docs-writer"
        await pilot.press("ctrl+s")  # the second save goes through
        await wait_for(pilot, lambda: any(a.model == "gpt-5-typo" for a in app.agents_cache.values()),
                       what="saved anyway")


async def test_the_sandbox_detail_age_ticks_between_watch_events(services_factory, monkeypatch):
    import lap_tui.tui.screens.sandbox_detail as detail
    from lap_tui.domain.clock import epoch_from_iso
    from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen
    from tests.tui.conftest import FROZEN, FakeSandboxBackend, seed_sandboxes

    monkeypatch.setattr(detail, "AGE_EVERY", 0.1, raising=False)
    backend = FakeSandboxBackend()
    services = services_factory(deterministic=False, sandboxes=backend)
    seed(services, seed_sandboxes)
    clock = [epoch_from_iso(FROZEN) + 30]
    services.clock = lambda: clock[0]
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: app.sandboxes is not None, what="backend")
        app.open_sandbox("s-000000000000")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxDetailScreen) and app.screen.query("#fields"),
                       what="detail")
        fields = app.screen.query_one("#fields")
        await wait_for(pilot, lambda: "30s" in str(fields.render()), what=f"age 30s: {fields.render()}")
        clock[0] += 3600 * 5
        await wait_for(pilot, lambda: "5h" in str(fields.render()), what="the age ticked")


async def test_the_unknown_key_notice_is_shown_as_written(services_factory):
    """It began with two spaces: `[keys]` was read as markup and dropped. Notices are plain now."""
    app = LapApp(services_factory(keys={"no.such.id": "x"}))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        n = next(n for n in app._notifications if "no.such.id" in n.message)
        assert n.message.startswith("[keys] 'no.such.id'") and not n.markup


async def test_page_ups_in_one_burst_go_on_into_older_turns(services_factory):
    from lap_tui.tui.widgets.transcript import TranscriptView

    async def turns(store):
        await seed_basic(store)
        for turn in range(6):
            t = f"7{turn:031d}"
            text = "\n\n".join(f"turn {turn} paragraph {i}" for i in range(10))
            await store.append(SESSION_ID, "turn.queued", {}, turn_id=t)
            await store.append(SESSION_ID, "user.message", {"text": text}, turn_id=t)
            await store.append(SESSION_ID, "model.message", {"text": "echo: " + text}, turn_id=t)
            await store.append(SESSION_ID, "turn.completed", {}, turn_id=t)

    services = services_factory()
    seed(services, turns)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.shown.is_set(), what="chat")
        log = app.screen.query_one(TranscriptView)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: log.has_focus and log.max_scroll_y > 0, what="the log")
        page = log.scrollable_content_region.height
        burst(app, ["pageup"] * 6)
        await wait_for(pilot, lambda: not log.loading_older and not log._owed and not app._key_order.held
                       and app._key_order.flying is None and log.max_scroll_y - log.scroll_y >= 6 * page - 2,
                       what="six pages up")
        assert log.max_scroll_y - log.scroll_y >= 6 * page - 2, (log.max_scroll_y, log.scroll_y, page)


async def test_a_paste_then_send_in_one_burst_sends_the_pasted_text(services_factory):
    services = services_factory()
    seed(services, seed_chat)
    app = LapApp(services, session=SESSION_ID)
    sent: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="chat")
        chat = app.screen
        draft = chat.query_one("#draft", TextArea)
        await wait_for(pilot, lambda: draft.has_focus, what="draft focused")
        chat._send = lambda text: sent.append(text)
        app.post_message(events.Paste("pasted: summarise the repo"))
        app.post_message(events.Key("ctrl+j", None))
        await wait_for(pilot, lambda: sent, what=f"a send (draft: {draft.text!r})")
        assert sent == ["pasted: summarise the repo"]


async def test_a_command_typed_in_one_burst_runs(services_factory):
    """`:` opens the command line; the rest of the burst is typed into it and enter runs it."""
    from lap_tui.tui.screens.sandboxes import SandboxesScreen

    app = LapApp(services_factory())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        burst(app, [":", *"sandboxes", "enter"])
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen), what="sandboxes")


async def test_a_filter_typed_in_one_burst_filters(services_factory):
    """`/` then the text at once: the text goes into the filter, not to the table (where `d`
    would have asked to delete an agent)."""
    from lap_tui.tui.screens.confirm import ConfirmScreen
    from lap_tui.tui.widgets.filter_bar import FilterBar
    from lap_tui.tui.widgets.table import LapTable

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        screen = app.screen
        burst(app, ["/", *"docs"])
        await wait_for(pilot, lambda: screen.query_one(FilterBar).value == "docs"
                       and screen.query_one(LapTable).row_count == 1, what="filtered by the burst")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_keys_typed_with_the_enter_that_opens_a_chat_reach_its_draft(services_factory):
    """The chat sets its focus in on_mount with Widget.focus() (queued on the app): the keys
    after enter wait for it."""
    from lap_tui.tui.screens.sessions import SessionsScreen

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services, view="sessions")
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.query("LapTable")
                       and app.screen.query_one("LapTable").row_count > 0, what="sessions")
        burst(app, ["enter", *"hi there"])
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query("#draft")
                       and app.screen.query_one("#draft", TextArea).text == "hi there", what="typed into the draft")
