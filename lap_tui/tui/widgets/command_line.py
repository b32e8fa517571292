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

    def __init__(self, choices: list[str], hint: str, initial: str = ":") -> None:
        super().__init__()
        self._choices = choices
        self._hint = hint
        self._initial = initial
        self._cycle: list[str] = []  # what tab steps through, and where it is
        self._at = -1

    def compose(self) -> ComposeResult:
        yield Input(placeholder="command (tab completes, esc cancels)", compact=True,
                    suggester=SuggestFromList(self._choices, case_sensitive=False), id="cmd")
        yield Static(self._hint, id="cmd-hint")

    def on_mount(self) -> None:
        inp = self.query_one(Input)
        inp.value = self._initial
        inp.cursor_position = len(self._initial)
        inp.suggester = SuggestFromList([":" + c for c in self._choices], case_sensitive=False)
        self.set_focus(inp)  # at once: the keys typed after `:` are the command

    async def on_key(self, event: events.Key) -> None:
        inp = self.query_one(Input)
        if event.key == "escape":
            event.stop()
            self.dismiss(None)
        elif event.key == "tab":
            event.stop()
            event.prevent_default()
            self._complete(inp)
        elif event.key == "backspace" and inp.value in ("", ":"):
            event.stop()
            self.dismiss(None)

    def _complete(self, inp: Input) -> None:
        """Tab completes; tab again steps to the next match of what was typed (`:theme ` tab tab
        goes through the themes), wrapping round."""
        if self._cycle and inp.value == self._cycle[self._at]:
            self._at = (self._at + 1) % len(self._cycle)
        else:
            typed = inp.value.lower()
            self._cycle = [":" + c for c in self._choices if (":" + c).lower().startswith(typed)
                           and len(c) + 1 > len(typed)]
            if not self._cycle:
                return
            self._at = 0
        inp.value = self._cycle[self._at]
        inp.cursor_position = len(inp.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)
