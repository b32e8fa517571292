"""`?`: the keys active on the screen below, with their binding ids for remapping."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from lap_tui.tui import commands, keymap


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 76; max-width: 100%; height: 90%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, active: dict[str, ActiveBinding]) -> None:
        super().__init__()
        self._active = active

    def compose(self) -> ComposeResult:
        keys = Table(box=None, expand=True, pad_edge=False, title=Text("Keys (remap by id in [keys] of config.toml)"),
                     title_justify="left", title_style="bold")
        keys.add_column("key", style="bold", no_wrap=True)
        keys.add_column("does")
        keys.add_column("id", style="dim", no_wrap=True)
        # The app's own keys only (each has an id in keymap.KEYS), grouped: Textual's generic
        # ones (Scroll Left, super+c) are not the app's and cannot be remapped by id.
        by_id: dict[str, list[str]] = {}
        enabled: dict[str, bool] = {}
        for key, ab in self._active.items():
            b = ab.binding
            if b.system or not b.id or b.id not in keymap.KEYS:
                continue
            shown = self.app.get_key_display(b)
            if shown not in by_id.setdefault(b.id, []):
                by_id[b.id].append(shown)
            enabled[b.id] = enabled.get(b.id, False) or ab.enabled
        self.key_rows = []
        for group, ids in keymap.help_order(list(by_id)):
            keys.add_row(Text(group, style="bold underline"), "", "")
            for id_ in ids:
                row = (", ".join(by_id[id_]), keymap.KEYS[id_].description + ("" if enabled[id_] else " (off)"), id_)
                self.key_rows.append(row)
                keys.add_row(*row)
        cmds = Table(box=None, expand=True, pad_edge=False, title="Commands (type : then a name; tab completes)",
                     title_justify="left", title_style="bold")
        cmds.add_column("command", style="bold", no_wrap=True)
        cmds.add_column("does")
        for c in commands.unique():
            cmds.add_row(":" + c.name + ("" if not c.aliases else f" ({', '.join(':' + a for a in c.aliases)})"),
                         c.help)
        with VerticalScroll():
            yield Static(keys)
            yield Static(Text(""))
            yield Static(cmds)
            yield Static(Text("\n/ filters tables · esc goes back · ctrl+p opens the palette · esc closes this",
                              style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
