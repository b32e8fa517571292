"""A checkbox whose unchecked box is empty: Textual draws an X in both states, only dimmed when
unchecked, and on a dark theme that dark X read as checked."""

from __future__ import annotations

from textual.widgets import Checkbox


class Check(Checkbox):
    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:  # noqa: N802 - Textual's class attribute, per state here
        return "X" if self.value else " "
