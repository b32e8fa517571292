"""Deleting a session or an agent in the app deletes the sandboxes it leaves unused, and the
confirmation says so (issue 10 item 12), as `lap-tui sessions delete` does."""

from __future__ import annotations

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.confirm import ConfirmScreen
from lap_tui.tui.screens.sessions import SessionsScreen
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import AGENT_ID, SESSION_ID, FakeSandboxBackend, seed, seed_sandboxes, wait_for


class Backend(FakeSandboxBackend):
    async def delete(self, sandbox_id: str) -> None:  # no watch() running on these screens
        self.calls.append(("delete", sandbox_id))
        await self.store.delete_sandbox(sandbox_id)


async def test_deleting_a_session_deletes_its_sandbox_and_says_so(services_factory):
    backend = Backend()
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.agents_cache and app.sandboxes is not None, what="start-up")
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen)
                       and app.screen.query_one(LapTable).row_count == 2, what="sessions")
        sessions = app.screen.query_one(LapTable)
        sessions.move_cursor(row=sessions.get_row_index(SESSION_ID))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        detail = str(app.screen.query_one("#detail").render())
        # The seed gives this session two sandbox records (s-…0 and s-…1).
        assert "journal of 0 events goes with it" in detail
        assert "and the sandboxes s-000000000000, s-000000000001 with their files" in detail
        await pilot.press("y")
        await wait_for(pilot, lambda: len(backend.calls) == 2, what="sandboxes deleted")
        assert sorted(backend.calls) == [("delete", "s-000000000000"), ("delete", "s-000000000001")]
        await wait_for(pilot, lambda: any("s-000000000000" in n.message for n in app._notifications),
                       what="the notice naming it")
        assert await app.store.get_sandbox("s-000000000000") is None
        assert await app.store.get_sandbox("s-000000000002") is not None  # another session's


async def test_deleting_an_agent_names_the_sandboxes_that_go(services_factory):
    backend = Backend()
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.agents_cache and app.sandboxes is not None, what="start-up")
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(AGENT_ID))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        detail = str(app.screen.query_one("#detail").render())
        assert ("2 sessions and their journals, and the sandboxes s-000000000000, s-000000000001, "
                "s-000000000002 with their files") in detail
        await pilot.press("y")
        await wait_for(pilot, lambda: AGENT_ID not in app.agents_cache, what="deleted")
        assert sorted(c[1] for c in backend.calls) == ["s-000000000000", "s-000000000001", "s-000000000002"]
