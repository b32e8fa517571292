"""The agent form edits what it shows and keeps what it has no field for (warm_pool,
max_lifetime_seconds): saving an edit used to reset them to their defaults."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import Input

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.agents import AgentsScreen
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import AGENT_ID, seed, seed_basic, wait_for
from tests.tui.test_app import started


async def _seed(store) -> None:
    await seed_basic(store)
    agent = await store.get_agent_by_id(AGENT_ID)
    await store.update_agent(replace(agent, sandbox=replace(agent.sandbox, warm_pool=3, max_lifetime_seconds=3600)))


async def test_editing_an_agent_keeps_its_warm_pool_and_lifetime(services_factory):
    services = services_factory(models=["gpt-4o-mini"])
    seed(services, _seed)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("e")
        form = app.screen
        assert isinstance(form, AgentForm)
        form.query_one("#f-memory", Input).value = "2Gi"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="saved")
        agent = await app.store.get_agent_by_id(AGENT_ID)
        assert (agent.sandbox.memory, agent.sandbox.warm_pool, agent.sandbox.max_lifetime_seconds) == ("2Gi", 3, 3600)
