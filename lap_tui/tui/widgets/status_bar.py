"""One line: health of the store, gateway and sandbox backend, and the mode."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lap_tui.tui.safety import neutralise, one_line


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(self._text(getattr(self.app, "health", {})), **kw)  # in the first frame

    def on_mount(self) -> None:
        self.watch(self.app, "health", self._show, init=True)
        self.watch(self.app, "theme", lambda _: self._show(self.app.health), init=False)

    def _show(self, health: dict[str, tuple[str, str]]) -> None:
        self.update(self._text(health))
        self.tooltip = self._details(health)

    @staticmethod
    def _details(health: dict[str, tuple[str, str]]) -> Text | None:
        """The whole reason behind each ✗, which the one-line bar may have to cut."""
        lines = [f"{name}: {neutralise(detail)}" for name in ("store", "gateway", "sandboxes")
                 for state, detail in [health.get(name, ("…", ""))] if state == "down" and detail]
        return Text("\n".join(lines)) if lines else None  # Text: the reason is never markup

    def _text(self, health: dict[str, tuple[str, str]]) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        # The theme's colours, not fixed green and red: lap-mono has no hues.
        theme = getattr(self.app, "current_theme", None)
        ok, down = (theme.success or "green", theme.error or "red") if theme is not None else ("green", "red")
        for i, name in enumerate(("store", "gateway", "sandboxes")):
            state, detail = health.get(name, ("…", ""))
            mark, style = {"ok": ("●", ok), "down": ("✗", down), "off": ("○", "dim")}.get(state, ("…", "dim"))
            if i:
                t.append("  ")
            t.append(f"{mark} ", style=style)
            t.append(name + (f" {one_line(detail)}" if detail else ""))  # a gateway's or store's words
        if getattr(self.app, "sandboxes", None) is not None:  # :ctx / :ns, once the backend is open
            kube = self.app.cluster_label()  # type: ignore[attr-defined]
            if kube:
                t.append(f"  ⎈ {one_line(kube)}")
        if getattr(self.app, "read_only", False):
            t.append("  READ-ONLY", style="bold reverse")
        t.append("   : command  ? keys", style="dim")
        return t
