"""DataTable with the helpers every list screen needs."""

from __future__ import annotations

from typing import Any, Iterable

from textual.widgets import DataTable


class LapTable(DataTable):
    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", **kw)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # enter belongs to the screen (agents.open, sessions.open, sandboxes.open): DataTable's
        # hidden enter hid it from the keys bar and `?`, and its id could not be remapped.
        if action == "select_cursor":
            return False
        return super().check_action(action, parameters)

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
