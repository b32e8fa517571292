"""Sessions of one agent (or all): status, last activity, tokens, cost; refreshed in place."""

from __future__ import annotations

import asyncio
from typing import Iterable

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.widgets import DataTable

from lap_tui.domain.errors import LapError
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.tui import keymap
from lap_tui.tui.formatting import age, cost, plural, short_id, tokens
from lap_tui.tui.screens.base import TableScreen
from lap_tui.tui.widgets.filter_bar import FilterBar
from lap_tui.tui.widgets.table import LapTable

COLUMNS = (("ID", "id"), ("AGENT", "agent"), ("TITLE", "title"), ("STATUS", "status"), ("ACTIVE", "active"),
           ("TOKENS", "tokens"), ("COST", "cost"))
REFRESH_EVERY = 2.0


class SessionsScreen(TableScreen):
    TITLE = "Sessions"
    VIEW = "sessions"
    BINDINGS = keymap.bindings("sessions.open", "sessions.new", "sessions.delete", "sessions.all", "table.filter")
    MUTATING = frozenset({"new", "delete"})

    def __init__(self, agent_id: str | None) -> None:
        super().__init__()
        self.agent_id = agent_id
        self._sessions: dict[str, Session] = {}
        self._filter = ""

    def compose_body(self) -> ComposeResult:
        yield FilterBar()
        table = LapTable(id="sessions")
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        agent = self.lap.agents_cache.get(self.agent_id or "")
        self.query_one("#title").set(title=f"Sessions of {agent.name}" if agent else "Sessions (all agents)")
        self.query_one(DataTable).focus()
        self._poll()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.lap.note("sessions_all", self.agent_id is None)
        if self.agent_id:
            self.lap.note("agent_id", self.agent_id)

    @work(group="sessions-poll", exclusive=True)
    async def _poll(self) -> None:
        while True:
            try:
                sessions = await self.lap.store.list_sessions(self.agent_id, limit=500)
            except LapError as exc:
                self.notify(str(exc), severity="error")
                sessions = None
            if sessions is not None:
                self._show(sessions)
            if self.lap.services.deterministic:
                return
            await asyncio.sleep(REFRESH_EVERY)

    def _cells(self, s: Session) -> tuple[str, ...]:
        now = self.lap.services.clock()
        return (short_id(s.id), s.agent_name, self.lap.clean(s.title) or "—", s.status.value, age(s.updated_at, now),
                tokens(s.prompt_tokens + s.completion_tokens), cost(s.cost_usd))

    def _visible(self, s: Session) -> bool:
        f = self._filter.lower()
        return not f or f in f"{s.id} {s.agent_name} {s.title} {s.status.value}".lower()

    def _show(self, sessions: list[Session]) -> None:
        """Update cells in place; rebuild only when the set or order of rows changed."""
        table = self.query_one(DataTable)
        self._sessions = {s.id: s for s in sessions}
        rows = [s for s in sessions if self._visible(s)]
        if [s.id for s in rows] != [k.value for k in table.rows]:
            keep = self.selected_id() or self.lap.state.session_id
            table.clear()
            for s in rows:
                table.add_row(*self._cells(s), key=s.id)
            if keep in table.rows:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
        else:
            for s in rows:
                for (_, col), value in zip(COLUMNS, self._cells(s)):
                    if table.get_cell(s.id, col) != value:
                        table.update_cell(s.id, col, value)
        if not sessions:
            self.query_one("#title").set(detail="no sessions — press n to start one")
        else:
            self.query_one("#title").set(detail=self.match_detail(len(rows), len(sessions)) if self._filter else
                                         plural(len(sessions), "session"))

    def selected_id(self) -> str | None:
        return self.query_one(LapTable).selected_key()

    def refilter(self) -> None:
        self._show(list(self._sessions.values()))

    def action_open(self) -> None:
        sid = self.selected_id()
        if sid:
            from lap_tui.tui.screens.chat import ChatScreen

            self.app.push_screen(ChatScreen(sid))

    def action_toggle_all(self) -> None:
        target = None if self.agent_id else self.lap.state.agent_id
        self.lap.note("sessions_all", target is None)
        self.app.switch_screen(SessionsScreen(target))

    def action_new(self) -> None:
        self._new()

    @work(group="sessions-new", exclusive=True)
    async def _new(self) -> None:
        agent_id = self.agent_id
        if agent_id is None:
            sel = self._sessions.get(self.selected_id() or "")
            agent_id = sel.agent_id if sel else self.lap.state.agent_id
        if agent_id not in self.lap.agents_cache:
            self.notify("pick an agent first (:agents, enter)", severity="warning")
            return
        try:
            s = await self.lap.store.create_session(Session(id=new_id(), agent_id=agent_id))
        except LapError as exc:
            self.notify(str(exc), severity="error")
            return
        from lap_tui.tui.screens.chat import ChatScreen

        self.app.push_screen(ChatScreen(s.id))

    def action_delete(self) -> None:
        s = self._sessions.get(self.selected_id() or "")
        if s is not None:
            self._delete(s)

    @work(group="sessions-delete", exclusive=True)
    async def _delete(self, s: Session) -> None:
        from lap_tui.tui.deletion import delete_sandboxes, sandboxes_going
        from lap_tui.tui.screens.confirm import ConfirmScreen

        events = f"{s.last_seq} event{'s' if s.last_seq != 1 else ''}"
        boxes = await self.lap.store.sandboxes_left_unused([s.id])
        detail = (f"Its journal of {events} goes with it ({tokens(s.prompt_tokens + s.completion_tokens)}"
                  f" tokens, {cost(s.cost_usd)})" + sandboxes_going(boxes, self.lap.sandboxes is not None) + ".")
        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete session {short_id(s.id)} of {s.agent_name}?",
                                                            detail)):
            return
        try:
            await delete_sandboxes(self.lap.sandboxes, boxes)  # first: a failure leaves no orphan
            from lap_tui.engine.relay_service import delete_virtual_keys

            note = await delete_virtual_keys(self.lap.settings, await self.lap.store.get_agent_by_id(s.agent_id),
                                             [s.id])  # its LiteLLM virtual key, when the agent uses them
            if note:
                self.notify(note, severity="warning")
            await self.lap.store.delete_session(s.id)
        except LapError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"deleted session {short_id(s.id)}" + (f" and {', '.join(boxes)}" if boxes else ""))
        self._poll()

    def palette_commands(self) -> Iterable[SystemCommand]:
        if not self.lap.read_only:
            yield SystemCommand("Sessions: New session", "Start a session with this agent", self.action_new)
        yield SystemCommand("Sessions: Toggle all agents", "This agent's sessions or everyone's",
                            self.action_toggle_all)
