"""The one registry of `:` commands, also offered in the command palette.

A command is a name, a help line, a handler `run(app, arg)` and a completer `complete(app)`
listing argument values. Other parts register theirs here with `register(...)` (`:ctx` and
`:ns` come from tui/cluster.py, which the app imports); the command line and the palette read only this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from lap_tui.tui.app import LapApp

Handler = Callable[["LapApp", str], "Awaitable[Any] | Any"]
Completer = Callable[["LapApp"], list[str]]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Handler
    complete: Completer | None = None
    aliases: tuple[str, ...] = ()
    mutates: bool = False  # refused in --read-only mode


REGISTRY: dict[str, Command] = {}


def register(command: Command) -> Command:
    REGISTRY[command.name] = command
    for alias in command.aliases:
        REGISTRY[alias] = command
    return command


def unique() -> list[Command]:
    seen: dict[str, Command] = {}
    for c in REGISTRY.values():
        seen.setdefault(c.name, c)
    return sorted(seen.values(), key=lambda c: c.name)


def parse(line: str) -> tuple[Command | None, str, str]:
    """':theme lap-light' -> (command, 'lap-light', name as typed)."""
    line = line.strip().lstrip(":").strip()
    name, _, arg = line.partition(" ")
    return REGISTRY.get(name.lower()), arg.strip(), name


def completions(app: "LapApp") -> list[str]:
    """Every full command line the command line can suggest."""
    out: list[str] = []
    for c in unique():
        out.append(c.name)
        if c.complete is not None:
            try:
                out.extend(f"{c.name} {v}" for v in c.complete(app))
            except Exception:  # a completer must never break typing
                pass
    return out


# -- the built-in commands

def _go(view: str) -> Handler:
    def run(app: "LapApp", arg: str) -> None:
        app.go(view, arg or None)
    return run


def _agent_names(app: "LapApp") -> list[str]:
    return sorted(a.name for a in app.agents_cache.values())


def _theme(app: "LapApp", arg: str) -> None:
    if not arg:
        app.notify("themes: " + ", ".join(app.theme_names()), title=":theme")
        return
    app.choose_theme(arg)


def _quit(app: "LapApp", arg: str) -> None:
    app.exit()


register(Command("agents", "Agents: list, create, edit, delete", _go("agents"), aliases=("agent", "a")))
register(Command("sessions", "Sessions: of the selected agent, or :sessions AGENT", _go("sessions"),
                 complete=_agent_names, aliases=("session", "s")))
register(Command("sandboxes", "Sandboxes: live status and actions", _go("sandboxes"),
                 aliases=("sandbox", "sb")))
register(Command("theme", "Theme: switch the colour theme", _theme,
                 complete=lambda app: app.theme_names()))
register(Command("quit", "Quit lap-tui", _quit, aliases=("q", "q!", "exit")))
register(Command("help", "Keys: list the active keys", lambda app, arg: app.action_help(), aliases=("?",)))


def _title(app: "LapApp", arg: str) -> None:
    screen = app.screen
    if not hasattr(screen, "set_title"):
        app.notify("open a chat first: :title names its session", severity="warning")
        return
    screen.set_title(arg)


register(Command("title", "Title: name the open chat's session, :title TEXT (empty clears it)", _title,
                 mutates=True))

