"""Ask before anything destructive, and say what goes with it. Defaults to No."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from lap_tui.tui import keymap
from lap_tui.tui.safety import neutralise, one_line


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = keymap.bindings("confirm.yes", "confirm.no")
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 64; max-width: 95%; height: auto; border: thick $error;
                               background: $surface; padding: 1 2; }
    ConfirmScreen #question { text-style: bold; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align: right middle; margin-top: 1; }
    ConfirmScreen Button { margin-left: 2; }
    """

    def __init__(self, question: str, detail: str, yes: str = "Delete") -> None:
        super().__init__()
        self._q, self._detail, self._yes = question, detail, yes

    def compose(self) -> ComposeResult:
        with Vertical():
            # Questions quote names from the store: plain text, never markup.
            yield Static(Text(one_line(self._q)), id="question")
            yield Static(Text(neutralise(self._detail)), id="detail")
            with Horizontal():
                yield Button("Cancel (n)", id="no", compact=True)
                yield Button(f"{self._yes} (y)", id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)
