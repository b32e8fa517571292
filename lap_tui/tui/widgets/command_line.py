"""k9s-style `:` command line: a one-line prompt over the current screen, with completion.

It only collects the line; the App parses and runs it through the commands registry.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static


class CommandLine(ModalScreen[str | None]):
    DEFAULT_CSS = """
    CommandLine { align: left bottom; background: $background 0%; }
    CommandLine > #cmd-hint { dock: bottom; height: 1; width: 100%; background: $panel; color: $text-muted;
                              padding: 0 1; margin-bottom: 1; }
    CommandLine > Input { dock: bottom; width: 100%; height: 1; border: none; padding: 0 0;
                          background: $boost; }
    """

    def __init__(self, choices: list[str], hint: str) -> None:
        super().__init__()
        self._choices = choices
        self._hint = hint

    def compose(self) -> ComposeResult:
        yield Input(placeholder="command (tab completes, esc cancels)", compact=True,
                    suggester=SuggestFromList(self._choices, case_sensitive=False), id="cmd")
        yield Static(self._hint, id="cmd-hint")

    def on_mount(self) -> None:
        inp = self.query_one(Input)
        inp.value = ":"
        inp.cursor_position = 1
        inp.suggester = SuggestFromList([":" + c for c in self._choices], case_sensitive=False)
        inp.focus()

    async def on_key(self, event: events.Key) -> None:
        inp = self.query_one(Input)
        if event.key == "escape":
            event.stop()
            self.dismiss(None)
        elif event.key == "tab":
            event.stop()
            event.prevent_default()
            if inp._suggestion:
                inp.value = inp._suggestion
                inp.cursor_position = len(inp.value)
        elif event.key == "backspace" and inp.value in ("", ":"):
            event.stop()
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)
