"""What every full screen shares: title bar, status bar, keys bar, read-only gating."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import DataTable

from lap_tui.tui import keymap
from lap_tui.tui.widgets.filter_bar import FilterBar
from lap_tui.tui.widgets.keys_bar import KeysBar
from lap_tui.tui.widgets.status_bar import StatusBar
from lap_tui.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from lap_tui.tui.app import LapApp


class LapScreen(Screen):
    TITLE: ClassVar[str] = ""
    VIEW: ClassVar[str] = ""  # what UiState.screen records
    MUTATING: ClassVar[frozenset[str]] = frozenset()  # actions hidden in --read-only mode

    @property
    def lap(self) -> "LapApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TitleBar(self.TITLE, id="title")
        yield from self.compose_body()
        yield StatusBar()
        yield KeysBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        if self.VIEW:
            self.lap.note("screen", self.VIEW)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATING and self.lap.read_only:
            return False
        return True

    def palette_commands(self) -> Iterable[SystemCommand]:
        return ()

    def action_back(self) -> None:
        self.lap.action_back()


class TableScreen(LapScreen):
    """A screen around one table: enter opens the row, `/` filters the rows, esc clears a kept filter."""

    BINDINGS = keymap.bindings("app.back")
    _filter = ""

    def action_back(self) -> None:
        bar = self.query_one(FilterBar)
        if bar.active:  # a filter kept with enter: esc clears it before it goes back
            bar.close(clear=True)
            return
        super().action_back()

    def match_detail(self, shown: int, total: int) -> str:
        """The title's detail while a filter is on: how many rows match what."""
        return f"{shown} of {total} match /{self._filter}"

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    @on(FilterBar.Updated)
    def _filtered(self, event: FilterBar.Updated) -> None:
        self._filter = event.text
        self.refilter()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_open(self) -> None:
        raise NotImplementedError

    def refilter(self) -> None:
        """Show the rows that match `self._filter`."""
        raise NotImplementedError
