"""The active keys of the screen, on one line at the bottom.

Textual's Footer composes a widget per key and, for each, re-applies the stylesheet when it is
built; it rebuilds on every focus change. Opening a screen cost ~50 ms of that (measured on the
`--session` start-up path). This is one widget rendering one line, rebuilt from the same
`active_bindings` when the screen says its bindings changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


class KeysBar(Static):
    COMPONENT_CLASSES = {"keys-bar--key", "keys-bar--description", "keys-bar--separator"}
    DEFAULT_CSS = """
    KeysBar {
        dock: bottom; height: 1; width: 1fr;
        background: $footer-background; color: $footer-foreground;
        & > .keys-bar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        & > .keys-bar--description { color: $footer-description-foreground; background: $footer-description-background; }
        & > .keys-bar--separator { color: $foreground 20%; }
    }
    """

    def __init__(self) -> None:
        super().__init__("")
        self._left: list[tuple[str, str, bool]] = []  # (key shown, description, enabled)
        self._palette: tuple[str, str, bool] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is not self.screen:
            return
        app = self.app
        seen: set[str] = set()
        left: list[tuple[str, str, bool]] = []
        for node, binding, enabled, _tooltip in screen.active_bindings.values():
            offers = getattr(node, "offers", None)
            if offers is not None and not offers(binding.action):
                continue  # refused in --read-only: not offered (the key says so if pressed)
            if binding.show and binding.action not in seen:  # one entry per action, its first key
                seen.add(binding.action)
                left.append((app.get_key_display(binding), binding.description, enabled))
        palette = None
        if app.ENABLE_COMMAND_PALETTE and (found := screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)):
            palette = (app.get_key_display(found.binding), found.binding.description, found.enabled)
        if (left, palette) != (self._left, self._palette):
            self._left, self._palette = left, palette
            self.refresh()

    def render(self) -> Text:
        key = self.get_component_rich_style("keys-bar--key")
        desc = self.get_component_rich_style("keys-bar--description")

        def item(shown: str, description: str, enabled: bool) -> Text:
            t = Text.assemble((shown, key), (" " + description if description else "", desc))
            if not enabled:
                t.stylize("dim")
            return t

        width = max(self.size.width, 1)
        line = Text(" ").join(item(*k) for k in self._left)
        if self._palette is None:
            line.truncate(width, overflow="ellipsis")
            return line
        # The palette key is always shown, at the right edge; the rest gives way.
        right = Text("▏", style=self.get_component_rich_style("keys-bar--separator")) + item(*self._palette)
        room = width - right.cell_len - 1
        if line.cell_len > room:
            line.truncate(max(room, 0), overflow="ellipsis")
        return line + Text(" " * max(1, width - line.cell_len - right.cell_len)) + right
