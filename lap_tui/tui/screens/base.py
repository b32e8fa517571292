"""What every full screen shares: title bar, status bar, keys bar, read-only gating."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

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
    MUTATING: ClassVar[frozenset[str]] = frozenset()  # actions hidden and refused in --read-only mode

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        # In --read-only mode these keys say so (they did nothing, silently): each such action
        # defined here is wrapped to refuse with a notice; the keys bar leaves them out.
        for name in cls.MUTATING:
            fn = cls.__dict__.get(f"action_{name}")
            if fn is not None and not getattr(fn, "_refuses_read_only", False):
                setattr(cls, f"action_{name}", _refused_in_read_only(fn))

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

    def offers(self, action: str) -> bool:
        """Whether the keys bar lists this action (not what --read-only refuses)."""
        return not (action in self.MUTATING and self.lap.read_only)

    def palette_commands(self) -> Iterable[SystemCommand]:
        return ()

    def action_back(self) -> None:
        self.lap.action_back()


def _refused_in_read_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def action(self: LapScreen, *args: Any, **kw: Any) -> Any:
        if self.lap.refuse_if_read_only():
            return None
        return fn(self, *args, **kw)  # a coroutine for an async action: Textual awaits it

    action._refuses_read_only = True  # type: ignore[attr-defined]
    return action


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
