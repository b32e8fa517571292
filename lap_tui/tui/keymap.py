"""Every key binding, by id, in one table; the config's [keys] table remaps them.

`[keys]` in config.toml maps a binding id to one key or a comma-separated list, e.g.
`"chat.send" = "ctrl+j,f5"`. Screens build their BINDINGS from here, so `?` and docs/TUI.md
list the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    key: str
    action: str
    description: str
    show: bool = True
    priority: bool = False


KEYS: dict[str, Key] = {
    # Everywhere
    "app.quit": Key("ctrl+q", "quit", "Quit", show=False, priority=True),
    "app.command_line": Key("colon", "command_line", "Command"),
    "app.help": Key("question_mark", "help", "Keys"),
    "app.palette": Key("ctrl+p", "command_palette", "Palette", show=False),
    "app.back": Key("escape", "back", "Back", show=False),
    "app.agents": Key("f1", "go('agents')", "Agents", show=False),
    "app.sessions": Key("f2", "go('sessions')", "Sessions", show=False),
    "app.sandboxes": Key("f3", "go('sandboxes')", "Sandboxes", show=False),
    # Tables
    "table.filter": Key("slash", "filter", "Filter"),
    # Agents
    "agents.open": Key("enter", "open", "Sessions"),
    "agents.new": Key("n", "new", "New"),
    "agents.edit": Key("e", "edit", "Edit"),
    "agents.delete": Key("d", "delete", "Delete"),
    # Agent form
    "form.save": Key("ctrl+s", "save", "Save", priority=True),
    "form.cancel": Key("escape", "cancel", "Cancel"),
    # Sessions
    "sessions.open": Key("enter", "open", "Chat"),
    "sessions.new": Key("n", "new", "New session"),
    "sessions.delete": Key("d", "delete", "Delete"),
    "sessions.all": Key("a", "toggle_all", "All agents"),
    # Chat
    "chat.send": Key("ctrl+j", "send", "Send", priority=True),
    "chat.cancel": Key("ctrl+g", "cancel_turn", "Cancel turn", priority=True),
    "chat.retry": Key("ctrl+r", "retry", "Retry", priority=True),
    "chat.focus_log": Key("ctrl+l", "focus_log", "Messages", priority=True),
    "chat.copy": Key("c", "copy_message", "Copy"),
    "chat.copy_code": Key("y", "copy_code", "Copy code"),
    "chat.toggle": Key("enter", "toggle", "Expand"),
    "chat.up": Key("up,k", "select(-1)", "Previous", show=False),
    "chat.down": Key("down,j", "select(1)", "Next", show=False),
    "chat.input": Key("i", "focus_input", "Write"),
    # Sandboxes
    "sandboxes.open": Key("enter", "open", "Detail"),
    "sandboxes.suspend": Key("s", "suspend", "Suspend"),
    "sandboxes.resume": Key("r", "resume", "Resume"),
    "sandboxes.describe": Key("d", "describe", "Describe"),
    "sandboxes.logs": Key("l", "logs", "Logs"),
    "sandboxes.shell": Key("x", "shell", "Shell"),
    "sandboxes.delete": Key("ctrl+d", "delete", "Delete"),  # k9s: d describes, ctrl+d deletes
    "sandboxes.origin": Key("o", "origin", "Origin"),  # all / pooled / claimed / own (warm pools)
    # Dialogs
    "confirm.yes": Key("y", "yes", "Yes"),
    "confirm.no": Key("n,escape", "no", "No"),
}


GROUPS = {"agents": "Agents", "form": "Agent form", "sessions": "Sessions", "chat": "Chat",
          "sandboxes": "Sandboxes", "confirm": "Dialogs", "table": "Tables", "app": "Everywhere"}


def group_of(id_: str) -> str:
    return GROUPS.get(id_.split(".")[0], "Other")


def help_order(ids: list[str]) -> list[tuple[str, list[str]]]:
    """The ids grouped for `?`: the screen's own groups first, then tables, then the keys that
    work everywhere; each group in the order of KEYS (f1, f2, f3 stay in that order)."""
    order = list(KEYS)
    rank = {g: i for i, g in enumerate(GROUPS.values())}
    groups: dict[str, list[str]] = {}
    for id_ in sorted((i for i in ids if i in KEYS), key=order.index):
        groups.setdefault(group_of(id_), []).append(id_)
    return sorted(groups.items(), key=lambda g: rank.get(g[0], len(rank)))


def bindings(*ids: str) -> list[Binding]:
    out = []
    for id_ in ids:
        k = KEYS[id_]
        out.append(Binding(k.key, k.action, k.description, show=k.show, priority=k.priority, id=id_))
    return out


def check_keymap(keys: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The remapping to apply and one message per unknown id (a typo should not pass silently)."""
    known = {k: v for k, v in keys.items() if k in KEYS}
    problems = [f"[keys] {k!r} is not a binding id (see `?` or docs/TUI.md)" for k in keys if k not in KEYS]
    return known, problems
