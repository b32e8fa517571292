"""Sandboxes: a live table fed by the backend's watch() (or the store's records without one).

Changes are collected in a dict and applied a few times a second, cell by cell, so 1,000 rows
under 100 changes/s cost a few hundred cell updates a second, not a table rebuild per change;
and a change draws again only when its row is on screen (SandboxTable).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Iterable

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual._two_way_dict import TwoWayDict
from textual.app import ComposeResult, SystemCommand
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from lap_tui.domain.errors import LapError
from lap_tui.sandbox.pty_relay import terminal_fds
from lap_tui.tui import keymap
from lap_tui.domain.clock import epoch_from_iso
from lap_tui.tui.formatting import age_since, plural, short_id
from lap_tui.tui.screens.base import LapScreen, TableScreen
from lap_tui.tui.widgets.filter_bar import FilterBar
from lap_tui.tui.widgets.table import Cell, LapTable, plain_cell

COLUMNS = (("NAME", "name"), ("BACKEND", "backend"), ("TEAM", "team"), ("AGENT", "agent"), ("ORIGIN", "origin"),
           ("SESSION", "session"), ("PHASE", "phase"), ("READY", "ready"), ("AGE", "age"), ("RESTARTS", "restarts"),
           ("POD", "pod"), ("NODE", "node"))  # POD and NODE: the pod's phase and node from the watch (cluster sandboxes)
COLUMN_KEYS = tuple(ColumnKey(k) for _, k in COLUMNS)
AGE = [k for _, k in COLUMNS].index("age")
# ORIGIN: a warm pool's sandbox waiting for a session, or given to one through a claim; "-" for one
# made for its session or context. The origin filter (o) cycles through these.
ORIGINS = ("", "pooled", "claimed", "own")
APPLY_EVERY = 0.2  # seconds: a fallback sweep of collected changes (the store polling sets them)
# A change is applied on its own timer at most APPLY_GAP after the previous apply: a lone status
# change shows within a frame or two (issue 11: <= 100 ms after the API event; it waited up to a
# whole 0.2 s sweep), while a burst still coalesces into at most 1/APPLY_GAP table updates a second.
APPLY_GAP = 0.05
AGE_EVERY = 5.0
POLL_EVERY = 1.0  # without a backend: re-read the store's records
REFILTER_AFTER = 0.06  # seconds after the last filter key before the table refilters


def as_row(item: Any) -> dict[str, Any] | None:
    """A SandboxStatus, SandboxRecord or watch event -> plain fields; None for a deletion."""
    if getattr(item, "type", None) == "deleted":
        return None
    st = getattr(item, "status", item)
    if not hasattr(st, "id"):
        st = item
    phase = getattr(st, "phase", "")
    created = getattr(st, "created_at", "")
    try:  # parsed once per change, not per row each time ages are refreshed or the filter is rebuilt
        created_epoch = epoch_from_iso(created) if created else None
    except ValueError:
        created_epoch = None
    return {"id": st.id, "backend": getattr(st, "backend", ""), "team": getattr(st, "team", ""),
            "agent_id": getattr(st, "agent_id", None), "session_id": getattr(st, "session_id", None),
            "phase": getattr(phase, "value", phase) or "", "ready": bool(getattr(st, "ready", False)),
            "created_at": created, "created_epoch": created_epoch, "restarts": int(getattr(st, "restarts", 0) or 0),
            "message": getattr(st, "message", "") or "", "warning": getattr(st, "warning", None),
            "node": getattr(st, "node", "") or "", "pod_phase": getattr(st, "pod_phase", "") or "",
            "origin": getattr(st, "origin", "") or "", "pool": getattr(st, "pool", "") or "",
            "claim": getattr(st, "claim", "") or ""}


class SandboxTable(LapTable):
    """The view's table: a change costs what the screen shows, not what the table holds.

    Textual's DataTable drops every rendered line on any cell update (a counter in all its cache
    keys) and remove_row re-indexes every row: under ~100 changes/s over 1,000 rows each apply
    drew the whole screen of cells again through Rich. Here a row off screen is changed quietly
    (its data only) and the caches are dropped when such a row comes into view; rows are removed
    and re-ordered in one pass; widths are measured from the cells' plain text. (Private parts of
    Textual 8.2.8, pinned exactly: tests/tui/test_sandboxes_table.py checks what is drawn.)
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._stale: set[RowKey] = set()  # changed while off screen: not drawn since

    def _on_screen(self, row_key: RowKey) -> bool:
        index = self._row_locations.get(row_key)
        if index is None:
            return False
        top = int(self.scroll_offset.y)
        return top - 1 <= index <= top + self.size.height

    def set_cells(self, key: str, values: dict[ColumnKey, Any]) -> None:
        row_key = RowKey(key)
        data = self._data[row_key]
        for column, value in values.items():
            cell = data[column] = plain_cell(value)
            width = cell_len(cell.plain)
            if width > self.columns[column].content_width:  # wider than the column: widen it (all redrawn)
                self.columns[column].content_width = width
                self._require_update_dimensions = True
                self.check_idle()
        if self._on_screen(row_key):
            self._update_count += 1  # as update_cell: every cached line is drawn again
            self.refresh()
        else:
            self._stale.add(row_key)

    def render_lines(self, crop: Region) -> list[Strip]:
        if self._stale:
            top = int(self.scroll_offset.y)
            get_key = self._row_locations.get_key
            if any(get_key(i) in self._stale for i in range(max(0, top - 1), top + self.size.height + 1)):
                self._update_count += 1
                self._stale.clear()  # the bump re-renders every row the next time it is drawn
        return super().render_lines(crop)

    def ordered_keys(self) -> list[RowKey]:
        get_key = self._row_locations.get_key
        return [get_key(i) for i in range(len(self.rows))]

    def remove_rows(self, keys: Any) -> None:
        """remove_row for many rows in one pass (remove_row rebuilds the index per row)."""
        gone = {RowKey(k) for k in keys if k in self.rows}
        if not gone:
            return
        order = [k for k in self.ordered_keys() if k not in gone]
        for k in gone:
            for column in self._data.get(k, ()):
                self._updated_cells.discard((k, column))
            del self.rows[k]
            del self._data[k]
        self._stale -= gone
        self._reindex(order)

    def order_rows(self, keys: list[str]) -> None:
        """Put the table's rows (exactly `keys`) in this order."""
        stored = {k.value: k for k in self.rows}
        order = [stored[k] for k in keys]
        if order != self.ordered_keys():
            self._reindex(order)

    def _reindex(self, order: list[RowKey]) -> None:
        self._row_locations = TwoWayDict({k: i for i, k in enumerate(order)})
        self.rows = {k: self.rows[k] for k in order}  # iterated in the order shown, as after add_row
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate  # kept within the rows left
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.refresh(layout=True)
        self.check_idle()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        # A body cell of one line of plain text that fits (every cell of this view) is one segment
        # in the style Rich's Padding + Styled pipeline would give each of its pieces: the same
        # screen (the snapshots did not change) for a fraction of the cost, which a redraw pays
        # for every cell on screen (a focus change, a visible row changed, ages every 5 s).
        if row_index < self.fixed_rows or column_index < self.fixed_columns:  # also the header (-1)
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor, self._update_count,
                     self._pseudo_class_state)
        lines = self._cell_render_cache.get(cache_key)
        if lines is not None:
            return lines
        row = self.rows.get(row_key)
        cell = (self._data.get(row_key) or {}).get(column_key)
        pad = self.cell_padding
        text = cell.plain if type(cell) is Cell and not cell.spans and not cell.style else None
        if row is None or row.height != 1 or text is None or "\t" in text or cell_len(text) > width - 2 * pad:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        lines = [[Segment(" " * pad + text + " " * (width - pad - cell_len(text)), style + post_style)]]
        self._cell_render_cache[cache_key] = lines
        return lines

    def _update_dimensions(self, new_rows: Any) -> None:
        # Every cell is one line of plain text (LapTable's Cell): its width is its cell length,
        # without Rich measuring 12 renderables per new row.
        columns = [self.columns[k] for k in COLUMN_KEYS if k in self.columns]
        for row_key in new_rows:
            data = self._data.get(row_key)
            if data is None:
                continue
            for column in columns:
                cell = data.get(column.key)
                width = cell_len(getattr(cell, "plain", cell) if cell is not None else "")
                if width > column.content_width:
                    column.content_width = width
        super()._update_dimensions(())


def _age(row: dict[str, Any], now: float) -> str:
    return age_since(row["created_epoch"], now) if row["created_epoch"] is not None else ""


class SandboxesScreen(TableScreen):
    TITLE = "Sandboxes"
    VIEW = "sandboxes"
    BINDINGS = keymap.bindings("sandboxes.open", "sandboxes.describe", "sandboxes.logs", "sandboxes.shell",
                               "sandboxes.suspend", "sandboxes.resume", "sandboxes.delete", "sandboxes.origin",
                               "table.filter")
    MUTATING = frozenset({"suspend", "resume", "delete", "shell"})

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any] | None] = {}
        self._filter = ""
        self._search: dict[str, str] = {}  # row id -> its cells as one lower-case string
        self._ages: dict[str, str] = {}  # row id -> the age its search text was made with
        self._shown: dict[str, tuple[str, ...]] = {}  # row id -> the cells last put in the table
        self._origin = ""  # the origin filter: one of ORIGINS ("" shows all)
        self._refilter_timer: Any = None
        self._apply_timer: Any = None
        self._applied_at = 0.0

    def compose_body(self) -> ComposeResult:
        yield FilterBar()
        table = SandboxTable(id="sandboxes")
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.set_interval(APPLY_EVERY, self.apply_pending)
        if not self.lap.services.deterministic:
            self.set_interval(AGE_EVERY, self._refresh_ages)
        self._feed()

    def backend_ready(self) -> None:
        self._feed()  # exclusive: replaces the store polling with the backend's watch()

    def cluster_switched(self) -> None:
        """`:ctx`: the rows were another context's; the new backend's watch lists its own."""
        self._pending = {k: None for k in self.rows}
        self._switched = True
        self._feed()

    def scope_changed(self) -> None:
        """`:ns`: only that team's rows (or all again)."""
        self._search.clear()
        self._refilter()

    @work(group="sandboxes-feed", exclusive=True)
    async def _feed(self) -> None:
        backend = self.lap.sandboxes
        try:
            # The store's records show at once; after :ctx only the new context's watch counts.
            for rec in await self.lap.store.list_sandboxes() if not getattr(self, "_switched", False) else ():
                self.offer(rec)
            self.apply_pending()
            if backend is not None and hasattr(backend, "watch"):
                async for ev in backend.watch():
                    self.offer(ev)
                return
            while not self.lap.services.deterministic:
                await asyncio.sleep(POLL_EVERY)
                seen = set()
                for rec in await self.lap.store.list_sandboxes():
                    seen.add(rec.id)
                    row = as_row(rec)
                    if self.rows.get(rec.id) != row:
                        self._pending[rec.id] = row
                for gone in set(self.rows) - seen:
                    self._pending[gone] = None
        except LapError as exc:
            self.notify(f"sandboxes: {exc}", severity="error")

    def offer(self, item: Any) -> None:
        """Queue a change; the latest per sandbox wins."""
        row = as_row(item)
        key = row["id"] if row else getattr(getattr(item, "status", item), "id", None)
        if key is not None:
            self._pending[key] = row
            if self._apply_timer is None and self.is_mounted:
                wait = max(0.0, self._applied_at + APPLY_GAP - time.monotonic())
                self._apply_timer = self.set_timer(wait or 0.001, self._apply_soon)

    def _apply_soon(self) -> None:
        self._apply_timer = None
        self.apply_pending()

    def _cells(self, r: dict[str, Any]) -> tuple[str, ...]:
        agent = self.lap.agents_cache.get(r["agent_id"] or "")
        phase = r["phase"] + (" ⚠" if r.get("warning") else "")
        made = _age(r, self.lap.services.clock())
        return (r["id"], r["backend"], r["team"], agent.name if agent else short_id(r["agent_id"]),
                r["origin"] or "-", short_id(r["session_id"]), phase, "yes" if r["ready"] else "no",
                made, str(r["restarts"]),
                self.lap.sanitiser.line(r["pod_phase"] or "-"), self.lap.sanitiser.line(r["node"] or "-"))

    def _visible(self, r: dict[str, Any]) -> bool:
        scope = getattr(self.lap, "team_scope", None)  # :ns
        if scope and r["team"] != scope:
            return False
        if self._origin and (r["origin"] or "own") != self._origin:
            return False
        f = self._filter.lower()
        if not f:
            return True
        text = self._search.get(r["id"])
        if text is None:
            cells = self._cells(r)
            self._ages[r["id"]] = cells[AGE]
            text = self._search[r["id"]] = " ".join(str(c) for c in cells).lower()
        return f in text

    def apply_pending(self) -> None:
        if not self._pending:
            return
        self._applied_at = time.monotonic()
        pending, self._pending = self._pending, {}
        table = self.query_one(SandboxTable)
        hide = []
        for key, row in pending.items():
            self._search.pop(key, None)
            if row is None:
                self.rows.pop(key, None)
                self._shown.pop(key, None)
                self._ages.pop(key, None)
                hide.append(key)
                continue
            self.rows[key] = row
            if not self._visible(row):
                hide.append(key)
                continue
            self._put(table, key, row)
        table.remove_rows(hide)
        self._title()

    def _put(self, table: SandboxTable, key: str, row: dict[str, Any]) -> None:
        """Add the row, or change only its cells that differ from what the table was given."""
        cells = self._cells(row)
        if key in table.rows:
            before = self._shown.get(key)
            if before != cells:
                table.set_cells(key, {col: v for i, (col, v) in enumerate(zip(COLUMN_KEYS, cells))
                                      if before is None or before[i] != v})
        else:
            table.add_row(*cells, key=key)
        self._shown[key] = cells

    def _title(self) -> None:
        table = self.query_one(DataTable)
        n = len(self.rows)
        ready = sum(1 for r in self.rows.values() if r["ready"])
        detail = (f"{plural(n, 'sandbox', 'sandboxes')}, {ready} ready" if n else
                  "no sandboxes yet: they appear when sessions run")
        if self._filter or self._origin:
            detail = self.match_detail(table.row_count, n)
        if self._origin:
            detail += f" · origin {self._origin}"
        self.query_one("#title").set(detail=detail)

    def _refresh_ages(self) -> None:
        """Only the ages that changed: their AGE cell and their row's filter text (1,000 rows made
        again every 5 s, and their filter text on the next key, held the loop tens of ms)."""
        table = self.query_one(SandboxTable)
        now = self.lap.services.clock()
        column = COLUMN_KEYS[AGE]
        for key, r in self.rows.items():
            value = _age(r, now)
            if key in self._search and self._ages.get(key) != value:
                del self._search[key]  # ages are part of what the filter matches
            shown = self._shown.get(key)
            if shown is not None and shown[AGE] != value and key in table.rows:
                table.set_cells(key, {column: value})
                self._shown[key] = shown[:AGE] + (value,) + shown[AGE + 1:]

    def refilter(self) -> None:
        # The typed key shows at once; the table follows a moment later (keys typed quickly
        # refilter once), and typing more only removes rows: no rebuild of 1,000 rows per key.
        if self._refilter_timer is not None:
            self._refilter_timer.stop()
        self._refilter_timer = self.set_timer(REFILTER_AFTER, self._refilter)

    def _refilter(self) -> None:
        self._refilter_timer = None
        table = self.query_one(SandboxTable)
        want = [k for k, r in self.rows.items() if self._visible(r)]
        wanted = set(want)
        present = {k.value for k in table.rows}
        if present != wanted:
            # Narrowing removes rows in one pass; widening adds the missing ones and puts every
            # row back in the original order (the cursor stays on its sandbox).
            selected = table.selected_key()
            table.remove_rows(present - wanted)
            for k in want:
                if k not in present:
                    self._put(table, k, self.rows[k])
            table.order_rows(want)
            if selected in wanted:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        self._title()

    def action_origin(self) -> None:
        """o: all -> pooled (a warm pool's, waiting) -> claimed (given to a session) -> own -> all."""
        self._origin = ORIGINS[(ORIGINS.index(self._origin) + 1) % len(ORIGINS)]
        self._refilter()  # the title says which

    def selected_id(self) -> str | None:
        return self.query_one(LapTable).selected_key()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.lap.note("sandbox_id", event.row_key.value)

    def action_open(self) -> None:
        sid = self.selected_id()
        if sid:
            self.lap.open_sandbox(sid)

    def action_describe(self) -> None:
        self._detail("describe")

    def action_logs(self) -> None:
        self._detail("log")

    def _detail(self, focus: str) -> None:
        from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen

        sid = self.selected_id()
        if sid:
            self.app.push_screen(SandboxDetailScreen(sid, focus=focus))

    def action_suspend(self) -> None:
        self._act("suspend")

    def action_resume(self) -> None:
        self._act("resume")

    def action_delete(self) -> None:
        self._act("delete")

    def action_shell(self) -> None:
        sid = self.selected_id()
        if sid:
            self.app.run_worker(sandbox_shell(self, sid), group="sandbox-shell", exclusive=True)

    def _act(self, verb: str) -> None:
        sid = self.selected_id()
        if sid:
            self.app.run_worker(sandbox_action(self, verb, sid), group=f"sandbox-{verb}")

    def palette_commands(self) -> Iterable[SystemCommand]:
        sid = self.selected_id()
        if sid and not self.lap.read_only:
            for verb in ("suspend", "resume", "delete", "shell"):
                yield SystemCommand(f"Sandbox: {verb.title()} {sid}", f"{verb.title()} the selected sandbox",
                                    getattr(self, f"action_{verb}"))
        if sid:
            yield SystemCommand(f"Sandbox: Describe {sid}", "Conditions and Events", self.action_describe)
            yield SystemCommand(f"Sandbox: Logs {sid}", "Follow its log", self.action_logs)
        from lap_tui.tui import cluster

        if cluster.on_cluster(self.lap):  # :ctx and :ns, one entry per choice
            for name in cluster.kubeconfig_contexts(self.lap)[0]:
                yield SystemCommand(f"Context: {name}", "Switch the kubeconfig context",
                                    lambda n=name: self.app.call_later(self.lap.run_command, f"ctx {n}"))
            for team in [*cluster.teams(self.lap), "all"]:
                yield SystemCommand(f"Namespace: {team}", "Show this team's sandboxes",
                                    lambda t=team: self.app.call_later(self.lap.run_command, f"ns {t}"))


async def sandbox_action(screen: LapScreen, verb: str, sandbox_id: str) -> None:
    """suspend / resume / delete through the backend; delete asks first."""
    app = screen.lap
    if app.refuse_if_read_only():
        return
    backend = await _backend(app)
    if backend is None:
        app.notify("no sandbox backend in this terminal: the table shows stored records only", severity="warning")
        return
    if verb == "delete":
        from lap_tui.tui.screens.confirm import ConfirmScreen

        rec = await app.store.get_sandbox(sandbox_id)
        who = f" (session {short_id(rec.session_id)})" if rec and rec.session_id else ""
        if not await app.push_screen_wait(ConfirmScreen(
                f"Delete sandbox {sandbox_id}{who}?",
                "Its processes stop and its workspace files are removed. The session and its journal stay; "
                "its next turn gets a fresh sandbox.")):
            return
    try:
        await getattr(backend, verb)(sandbox_id)
    except LapError as exc:
        app.notify(f"{verb} {sandbox_id}: {exc}", severity="error")
        return
    app.notify(f"{verb}{'d' if verb.endswith('e') else 'ed'} {sandbox_id}")


async def _backend(app: Any) -> Any:
    """The sandbox backend, waiting for it while it opens: the table shows the store's rows before
    the backend is there, and a key pressed then must act, not say there is no backend."""
    if app.sandboxes is None:
        await app.sandboxes_tried.wait()
    return app.sandboxes


async def sandbox_shell(screen: LapScreen, sandbox_id: str) -> None:
    """An interactive shell in the sandbox on this terminal; the app comes back when it exits."""
    app = screen.lap
    if app.refuse_if_read_only():
        return
    backend = await _backend(app)
    if backend is None or not hasattr(backend, "shell"):
        app.notify("no sandbox backend in this terminal: cannot open a shell", severity="warning")
        return
    # The shell runs on a pty the backend owns and relays (sandbox/pty_relay.py): it never holds
    # this terminal, so the app always gets it back as it left it. Textual resumes only when the
    # `with` body returns normally, so nothing may escape it: errors are kept and shown after.
    failed: BaseException | None = None
    code = 0
    try:
        with app.suspend():
            try:
                banner = f"lap-tui: shell in sandbox {app.sanitiser.line(sandbox_id)}; exit to return\r\n"
                out = terminal_fds()[1]
                if os.isatty(out):
                    os.write(out, b"\x1b[H\x1b[2J" + banner.encode())  # on a clear screen
                code = await backend.shell(sandbox_id)
            except BaseException as exc:  # noqa: BLE001 - re-raised or shown once the app is back
                failed = exc
    except Exception as exc:  # noqa: BLE001 - e.g. SuspendNotSupported in a test driver
        failed = exc
    if isinstance(failed, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
        raise failed
    if failed is not None:
        app.notify(f"shell {sandbox_id}: {failed}", severity="error")
        return
    how = ": killed (its sandbox deleted or suspended, or the shell killed)" if code == 137 else ""
    app.notify(f"exited with {code}{how}", title=f"shell in {sandbox_id}")
