"""The `/` filter of a table: hidden until asked for; esc clears it, enter keeps it (esc on the
table then clears it). It takes a line of its own under the title (docked, it covered the title
and with it the count of matching rows, which the title shows as `N of M match /text`)."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar { display: none; height: 1; border: none; padding: 0 1; background: $panel; }
    FilterBar.-shown { display: block; }
    """

    class Updated(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kw) -> None:
        super().__init__(placeholder="/ filter (esc clears, enter keeps)", compact=True, **kw)
        self.can_focus = False  # while hidden, tab and start-up focus must skip it

    def open(self) -> None:
        self.add_class("-shown")
        self.can_focus = True
        self.screen.set_focus(self)  # at once: the keys typed after `/` are for the filter

    @property
    def active(self) -> bool:
        return bool(self.value)

    def close(self, *, clear: bool) -> None:
        if clear and self.value:
            self.value = ""
        if not self.value:
            self.remove_class("-shown")
            self.can_focus = False
        self.screen.focus_next()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Updated(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close(clear=False)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "escape":
            event.stop()
            event.prevent_default()
            self.close(clear=True)
            return
        await super()._on_key(event)
