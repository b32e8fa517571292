"""The Sandboxes view's k9s keys on a local sandbox (issue 13 item 4): `d` opens the detail on its
describe pane, `l` on its log, `ctrl+d` deletes; the new columns show `-` where there is no pod.
(On the cluster: tests/k8s/test_tui_cluster.py.)"""

from __future__ import annotations

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.confirm import ConfirmScreen
from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen
from lap_tui.tui.screens.sandboxes import SandboxesScreen
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import FakeSandboxBackend, seed, seed_sandboxes, wait_for

SID = "s-000000000000"


async def test_d_l_and_ctrl_d_on_a_local_sandbox(services_factory):
    backend = FakeSandboxBackend()  # no describe(): a local backend has nothing to describe
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.sandboxes is not None
                       and app.screen.query_one(LapTable).row_count == 4, what="sandboxes")
        table = app.screen.query_one(LapTable)
        assert (table.get_cell(SID, "pod"), table.get_cell(SID, "node")) == ("-", "-")
        table.move_cursor(row=table.get_row_index(SID))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxDetailScreen)
                       and app.screen.described is not None, what="describe")
        assert "a local sandbox has no conditions or events" in str(app.screen.query_one("#describe").render())
        assert app.screen.query_one("#describe-box").has_focus
        await pilot.press("l")
        assert app.screen.query_one("Log").has_focus
        await wait_for(pilot, lambda: app.screen.query_one("Log").line_count >= 2, what="the log")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen), what="back")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxDetailScreen), what="l from the list")
        assert app.screen.query_one("Log").has_focus
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen), what="back")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="delete asks")
        await pilot.press("n")
        assert not any(c[0] == "delete" for c in backend.calls)
