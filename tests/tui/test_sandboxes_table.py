"""The Sandboxes view's table (SandboxTable): a change to a row off screen draws nothing until the
row comes into view, and then it is drawn with the new value (never a line cached before the
change); narrowing and widening keep the rows and their order right."""

from __future__ import annotations

from textual.widgets.data_table import RowKey

from lap_tui.domain.sandbox import SandboxEvent, SandboxPhase, SandboxStatus
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.sandboxes import SandboxesScreen, SandboxTable
from tests.tui.conftest import FakeSandboxBackend, seed, seed_sandboxes, wait_for

N = 120


def line_of(table: SandboxTable, key: str) -> str:
    """The text drawn for the row now (it must be on screen)."""
    y = table.get_row_index(key) - int(table.scroll_offset.y) + 1  # +1: the header
    assert 1 <= y < table.size.height, (key, y)
    return table.render_line(y).text


def sandboxes_app(services_factory, n: int = N) -> tuple[LapApp, FakeSandboxBackend]:
    """The Sandboxes view over `n` seeded sandboxes (every 4th from 2 Pending, the rest Running)."""
    backend = FakeSandboxBackend()
    services = services_factory(sandboxes=backend)

    async def many(store):
        await seed_sandboxes(store, n=n)

    seed(services, many)
    return LapApp(services, view="sandboxes"), backend


async def rows_shown(pilot, app: LapApp, backend: FakeSandboxBackend, n: int = N) -> SandboxTable:
    """Once the view shows all `n` rows and follows the backend's events: its table."""
    await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and backend.events is not None
                   and app.screen.query_one(SandboxTable).row_count == n, what="the rows")
    return app.screen.query_one(SandboxTable)


async def test_a_change_off_screen_is_drawn_when_its_row_comes_into_view(services_factory):
    app, backend = sandboxes_app(services_factory)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await rows_shown(pilot, app, backend)
        far = f"s-{N - 4:012x}"  # near the end (Running): off screen at the top
        rec = await backend.store.get_sandbox(far)
        assert rec.phase == "Running"
        # Drawn once (cached), then scrolled away.
        table.move_cursor(row=table.get_row_index(far), animate=False)
        await pilot.pause()
        assert "Running" in line_of(table, far)
        table.move_cursor(row=0, animate=False)
        await pilot.pause()
        assert not table._on_screen(RowKey(far))
        count = table._update_count
        backend.events.put_nowait(SandboxEvent("modified", SandboxStatus(
            id=far, backend="local", team=rec.team, phase=SandboxPhase.FAILED, agent_id=rec.agent_id,
            session_id=rec.session_id, restarts=rec.restarts, created_at=rec.created_at)))
        await wait_for(pilot, lambda: table.get_cell(far, "phase") == "Failed", what="the change applied")
        await pilot.pause()
        assert table._update_count == count  # off screen: nothing on screen was drawn again for it
        table.move_cursor(row=table.get_row_index(far), animate=False)
        await pilot.pause()
        text = line_of(table, far)
        assert "Failed" in text and "Running" not in text, text
        # On screen, a change is drawn at once.
        backend.events.put_nowait(SandboxEvent("modified", SandboxStatus(
            id=far, backend="local", team=rec.team, phase=SandboxPhase.SUSPENDED, agent_id=rec.agent_id,
            session_id=rec.session_id, restarts=rec.restarts, created_at=rec.created_at)))
        await wait_for(pilot, lambda: "Suspended" in line_of(table, far), what="the visible change drawn")


async def test_narrowing_and_widening_keep_every_row_and_the_cursor(services_factory):
    app, backend = sandboxes_app(services_factory)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await rows_shown(pilot, app, backend)
        order = [k.value for k in table.rows]
        target = f"s-{N - 2:012x}"  # Pending (every 4th from 2)
        table.move_cursor(row=table.get_row_index(target), animate=False)
        await pilot.press("slash", *"pending")
        await wait_for(pilot, lambda: table.row_count == N // 4, what="narrowed to the pending rows")
        assert all(table.get_cell(k, "phase") == "Pending" for k in table.rows)
        assert [table.get_row_index(k.value) for k in table.rows] == list(range(N // 4))
        assert table.selected_key() == target  # the cursor stayed on its sandbox
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == N, what="widened")
        assert [k.value for k in table.rows] == order
        assert [table.get_row_index(k) for k in order] == list(range(N))
        assert table.selected_key() == target
        assert target in line_of(table, target)


async def test_a_value_wider_than_its_column_widens_it(services_factory):
    app, backend = sandboxes_app(services_factory, n=4)
    async with app.run_test(size=(160, 30)) as pilot:
        table = await rows_shown(pilot, app, backend, n=4)
        sid = "s-000000000000"
        rec = await backend.store.get_sandbox(sid)
        assert "ORIGIN " in table.render_line(0).text  # the column is as wide as its header
        backend.events.put_nowait(SandboxEvent("modified", SandboxStatus(
            id=sid, backend="local", team=rec.team, phase=SandboxPhase.RUNNING, ready=True, agent_id=rec.agent_id,
            session_id=rec.session_id, restarts=rec.restarts, created_at=rec.created_at, origin="claimed",
            pool="lw-x", claim="s-x")))
        await wait_for(pilot, lambda: " claimed " in line_of(table, sid), what="claimed drawn whole (the column widened)")


async def test_ages_refresh_only_what_changed_and_the_filter_sees_the_new_ages(services_factory):
    app, backend = sandboxes_app(services_factory)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await rows_shown(pilot, app, backend)
        screen = app.screen
        first, far = "s-000000000000", f"s-{N - 4:012x}"
        before = str(table.get_cell(first, "age"))
        await pilot.press("slash", *before)  # every row matches its age: the filter text is built
        await wait_for(pilot, lambda: table.row_count == N, what="all rows match the age")
        await pilot.press("escape")
        created = screen.rows[first]["created_epoch"]
        app.services.clock = lambda: created + 3 * 86400 + 30  # three days on
        screen._refresh_ages()
        await pilot.pause()
        assert table.get_cell(first, "age") == table.get_cell(far, "age") == "3d"
        assert "3d" in line_of(table, first)
        table.move_cursor(row=table.get_row_index(far), animate=False)
        await pilot.pause()
        assert "3d" in line_of(table, far)  # off screen when aged: drawn aged when scrolled to
        await pilot.press("slash", *"3d")  # the filter matches the new age, not the old one
        await wait_for(pilot, lambda: table.row_count == N, what="every row 3d old")
        await pilot.press(*["backspace"] * 2, *before)
        await wait_for(pilot, lambda: table.row_count == 0, what=f"no row {before} old any more")
