"""One line at the top: where you are, and a short context on the right."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lap_tui.tui.safety import one_line


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar { dock: top; height: 1; background: $primary 30%; color: $foreground; padding: 0 1; }
    """

    def __init__(self, title: str, detail: str = "", **kw) -> None:
        super().__init__(self._text(title, detail), **kw)  # in the first frame, not after mount
        self._title, self._detail = title, detail

    def set(self, title: str | None = None, detail: str | None = None) -> None:
        if title is not None:
            self._title = title
        if detail is not None:
            self._detail = detail
        self._paint()

    def _paint(self) -> None:
        self.update(self._text(self._title, self._detail))

    @staticmethod
    def _text(title: str, detail: str) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("lap-tui ", style="bold")
        t.append("› " + one_line(title))  # titles quote agent names and session titles
        if detail:
            t.append("  " + one_line(detail), style="dim")
        return t
