"""DataTable with the helpers every list screen needs.

DataTable parses string cells as markup: a session title `[/x]` raised MarkupError and
`[@click=app.quit]` became an action. Every str cell is stored here as plain `Text`,
neutralised onto one line (names, titles and models come from a store any process can
write), comparing equal to its plain string so screens can compare cells with new values.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.widgets import DataTable

from lap_tui.tui.safety import one_line


class Cell(Text):
    """A cell's text, never markup, that compares equal to its plain string (screens and tests
    compare cells with the values they would put there)."""

    def __eq__(self, other: object) -> bool:
        return self.plain == other if isinstance(other, str) else super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like Text


def plain_cell(value: Any) -> Any:
    return Cell(one_line(value), end="") if isinstance(value, str) else value


class LapTable(DataTable):
    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", **kw)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # enter belongs to the screen (agents.open, sessions.open, sandboxes.open): DataTable's
        # hidden enter hid it from the keys bar and `?`, and its id could not be remapped.
        if action == "select_cursor":
            return False
        return super().check_action(action, parameters)

    def add_row(self, *cells: Any, **kw: Any) -> Any:
        return super().add_row(*(plain_cell(c) for c in cells), **kw)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kw: Any) -> None:
        super().update_cell(row_key, column_key, plain_cell(value), **kw)

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        super()._update_dimensions(new_rows)
        # Textual 8.2.8 keeps rows rendered with the old column widths in its cache when the
        # first rows arrive before the first idle; drop the cache once widths are known.
        self._clear_caches()
        self.refresh()

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty or refilling table
            return None
