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
    for k in keys:
        app.post_message(events.Key(k, k if len(k) == 1 else None))


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
