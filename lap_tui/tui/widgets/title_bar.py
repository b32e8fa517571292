"""One line at the top: where you are, and a short context on the right."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar { dock: top; height: 1; background: $primary 30%; color: $foreground; padding: 0 1; }
    """

    def __init__(self, title: str, detail: str = "", **kw) -> None:
        super().__init__(**kw)
        self._title, self._detail = title, detail

    def on_mount(self) -> None:
        self._paint()

    def set(self, title: str | None = None, detail: str | None = None) -> None:
        if title is not None:
            self._title = title
        if detail is not None:
            self._detail = detail
        self._paint()

    def _paint(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("lap-tui ", style="bold")
        t.append("› " + self._title)
        if self._detail:
            t.append("  " + self._detail, style="dim")
        self.update(t)
