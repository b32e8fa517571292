"""Agents: a filterable table; new, edit, delete (asks first); enter opens their sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from rich.text import Text
from textual.widgets import DataTable, Static

from lap_tui.domain.agent import Agent
from lap_tui.domain.errors import LapError
from lap_tui.tui import keymap
from lap_tui.tui.safety import markup_safe  # the palette parses its titles as markup
from lap_tui.tui.formatting import age, plural
from lap_tui.tui.safety import neutralise
from lap_tui.tui.screens.base import TableScreen
from lap_tui.tui.widgets.filter_bar import FilterBar
from lap_tui.tui.widgets.table import LapTable

COLUMNS = (("NAME", "name"), ("TEAM", "team"), ("MODEL", "model"), ("HARNESS", "harness"),
           ("SANDBOX", "sandbox"), ("AGE", "age"))
REFRESH_EVERY = 2.0  # seconds between reads of the store while the list is shown (like Sessions)


class AgentsScreen(TableScreen):
    TITLE = "Agents"
    VIEW = "agents"
    BINDINGS = keymap.bindings("agents.open", "agents.new", "agents.edit", "agents.delete", "table.filter")
    MUTATING = frozenset({"new", "edit", "delete"})

    def __init__(self) -> None:
        super().__init__()
        self._agents: list[Agent] = []
        self._filter = ""
        self._loaded = False
        self._filled = False
        self._read_at = 0.0  # monotonic time of the last read of the store
        self._want: str | None = None  # an agent to select once it is in the list (just saved)

    DEFAULT_CSS = """
    AgentsScreen #store-problem { display: none; padding: 1 2; height: auto; }
    AgentsScreen.-store-down #store-problem { display: block; }
    AgentsScreen.-store-down #agents { display: none; }
    """

    def compose_body(self) -> ComposeResult:
        yield FilterBar()
        yield Static("", id="store-problem")
        table = LapTable(id="agents")
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        if self.lap.agents_loaded:
            self.show_agents(list(self.lap.agents_cache.values()))
        elif self.lap.store_down is not None:
            self.store_problem(*self.lap.store_down)
        else:
            self.query_one("#title").set(detail="opening the store…")

    def store_problem(self, exc: Exception | None, attempt: int, wait: float) -> None:
        """Where the list would be: why the store cannot be opened, the fix, and when the app
        tries again (None: it is open now)."""
        if not self.is_mounted:
            return  # on_mount reads the app's store_down
        self.set_class(exc is not None, "-store-down")
        if exc is None:
            return
        message, hint = (exc.message, exc.hint) if isinstance(exc, LapError) else (f"{type(exc).__name__}: {exc}", None)
        text = Text()
        text.append("The store cannot be opened\n\n", style="bold")
        text.append(neutralise(message) + "\n\n")
        if hint:
            text.append("Fix: ", style="bold")
            text.append(neutralise(hint) + "\n\n")
        text.append(f"Trying again in {wait:g} s (attempt {attempt}); the list shows as soon as it opens.",
                    style="dim")
        self.query_one("#store-problem", Static).update(text)
        self.query_one("#title").set(detail=f"store unreachable: retrying in {wait:g} s")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._poll()  # back on the list (or shown first): read again, then every REFRESH_EVERY

    @work(group="agents-poll", exclusive=True)
    async def _poll(self) -> None:
        """Agents created, changed or deleted by another process (the CLI, a teammate on the
        same Postgres) appear while the list is shown, and AGE ticks."""
        await self.lap.store_ready.wait()
        wait = REFRESH_EVERY - (time.monotonic() - self._read_at)
        while True:
            if wait > 0:
                await asyncio.sleep(wait)
            if self.app.screen is not self:  # covered by another screen: read again on resume
                return
            self._read_at = time.monotonic()
            try:
                await self.lap.refresh_agents()
            except Exception as exc:  # noqa: BLE001 - a store that went away: said, and tried again
                self.query_one("#title").set(detail=f"cannot read the agents: {str(exc).splitlines()[0]}")
            if self.lap.services.deterministic:
                return
            wait = REFRESH_EVERY

    def show_agents(self, agents: list[Agent]) -> None:
        self._agents = agents
        self._loaded = True
        self._read_at = time.monotonic()
        self._fill()

    def select_agent(self, agent_id: str) -> None:
        """Put the cursor on this agent now, or as soon as it is listed (a form just saved it)."""
        self._want = agent_id
        table = self.query_one(LapTable)
        if agent_id in table.rows:
            table.move_cursor(row=table.get_row_index(agent_id), animate=False)
            self._want = None

    def _cells(self, a: Agent, now: float) -> tuple[str, ...]:
        return (a.name, a.team, a.model, a.harness, a.sandbox.backend, age(a.created_at, now))

    def _fill(self) -> None:
        """Cells are updated in place; rows are rebuilt only when the set or order changed."""
        table = self.query_one(LapTable)
        keep = self._want or (self.selected_id() if self._filled else self.lap.initial.agent_id)
        self._filled = True
        now = self.lap.services.clock()
        f = self._filter.lower()
        rows = [a for a in self._agents if not f or f in f"{a.name} {a.team} {a.model} {a.harness}".lower()]
        if [a.id for a in rows] != [k.value for k in table.rows]:
            table.clear()
            for a in rows:
                table.add_row(*self._cells(a, now), key=a.id)
        else:
            for a in rows:
                for (_, col), value in zip(COLUMNS, self._cells(a, now)):
                    if table.get_cell(a.id, col) != value:
                        table.update_cell(a.id, col, value)
        if not self._agents:
            hint = "no agents yet — press n to create one" if not self.lap.read_only else "no agents yet"
            self.query_one("#title").set(detail=hint)
        else:
            self.query_one("#title").set(detail=self.match_detail(table.row_count, len(self._agents)) if f else
                                         plural(len(self._agents), "agent"))
        if keep is not None and keep in table.rows:
            if table.cursor_row != table.get_row_index(keep):
                table.move_cursor(row=table.get_row_index(keep), animate=False)
            if keep == self._want:
                self._want = None

    def selected_id(self) -> str | None:
        return self.query_one(LapTable).selected_key()

    def selected(self) -> Agent | None:
        id_ = self.selected_id()
        return self.lap.agents_cache.get(id_) if id_ else None

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.lap.note("agent_id", event.row_key.value)

    def refilter(self) -> None:
        self._fill()

    def action_open(self) -> None:
        agent = self.selected()
        if agent is not None:
            self.lap.note("agent_id", agent.id)
            self.lap.note("sessions_all", False)
            self.lap.go("sessions", agent.id)

    def action_new(self) -> None:
        from lap_tui.tui.screens.agent_form import AgentForm

        self.app.push_screen(AgentForm(None))

    def action_edit(self) -> None:
        from lap_tui.tui.screens.agent_form import AgentForm

        agent = self.selected()
        if agent is not None:
            self.app.push_screen(AgentForm(agent))

    def action_delete(self) -> None:
        agent = self.selected()
        if agent is not None:
            self._confirm_delete(agent)

    @work(group="agents-delete", exclusive=True)
    async def _confirm_delete(self, agent: Agent) -> None:
        from lap_tui.tui.deletion import delete_sandboxes, sandboxes_going
        from lap_tui.tui.screens.confirm import ConfirmScreen

        store = self.lap.store
        n = await store.count_sessions(agent.id)
        sessions = [s.id for s in await store.list_sessions(agent.id, limit=max(n, 1))]
        boxes = await store.sandboxes_left_unused(sessions)
        detail = (f"This deletes {n} session{'s' if n != 1 else ''} and {'its journal' if n == 1 else 'their journals'}"
                  + sandboxes_going(boxes, self.lap.sandboxes is not None) + ". This cannot be undone.")
        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete agent {agent.name} (team {agent.team})?",
                                                            detail)):
            return
        try:
            await delete_sandboxes(self.lap.sandboxes, boxes)  # first: a failure leaves no orphan
            from lap_tui.engine.pools import follow_agent

            await follow_agent(self.lap.settings, store, agent, deleted=True)  # its warm pool, if any
            from lap_tui.engine.relay_service import delete_virtual_keys

            note = await delete_virtual_keys(self.lap.settings, agent, sessions)  # their LiteLLM virtual keys
            if note:
                self.notify(note, severity="warning")
            gone = await store.delete_agent(agent.id)
        except LapError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"deleted agent {agent.name} and {gone} session{'s' if gone != 1 else ''}"
                    + (f" and {len(boxes)} sandbox{'es' if len(boxes) != 1 else ''}" if boxes else ""))
        await self.lap.refresh_agents()

    def palette_commands(self) -> Iterable[SystemCommand]:
        if not self.lap.read_only:
            yield SystemCommand("Agents: New agent", "Create an agent", self.action_new)
        agent = self.selected()
        if agent is not None:
            yield SystemCommand(f"Agents: Open {markup_safe(agent.name)}", "Its sessions", self.action_open)
            if not self.lap.read_only:
                yield SystemCommand(f"Agents: Edit {markup_safe(agent.name)}", "Change the agent", self.action_edit)
                yield SystemCommand(f"Agents: Delete {markup_safe(agent.name)}", "Delete it with its sessions",
                                    self.action_delete)
