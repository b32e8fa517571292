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


async def test_a_lone_change_reaches_the_table_without_waiting_for_the_sweep(services_factory, monkeypatch):
    """A status change is applied on its own short timer (issue 11: a watch event on screen in
    <= 100 ms), not only by the periodic sweep: with the sweep made an hour long, an offered
    change still shows. Fails with the on-demand apply removed (it waited for the sweep)."""
    import lap_tui.tui.screens.sandboxes as sb
    from lap_tui.domain.sandbox import SandboxEvent, SandboxPhase, SandboxStatus

    monkeypatch.setattr(sb, "APPLY_EVERY", 3600.0)
    backend = FakeSandboxBackend()
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.sandboxes is not None
                       and app.screen.query_one(LapTable).row_count == 4, what="sandboxes")
        table = app.screen.query_one(LapTable)
        assert str(table.get_cell(SID, "phase")).startswith("Running")
        await wait_for(pilot, lambda: backend.events is not None, what="the watch")
        # through the watch, as a cluster's status change arrives
        backend.events.put_nowait(SandboxEvent("modified", SandboxStatus(
            id=SID, backend="local", team="platform", phase=SandboxPhase.FAILED, ready=False)))
        await wait_for(pilot, lambda: str(table.get_cell(SID, "phase")).startswith("Failed"),
                       what="the change in the table")
