"""Entry point. Subcommand modules are imported only when used, so each stays fast."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys

from lap_tui import __version__
from lap_tui.domain.errors import LapError
from lap_tui.domain.text import one_line

# command -> module under lap_tui.cli; each module has register(subparsers).
COMMANDS = {
    "agents": "agents",
    "sessions": "sessions",
    "journal": "journal",
    "sandboxes": "sandboxes",
    "send": "send",
    "worker": "worker",
    "migrate": "admin",
    "config": "admin",
    "harnesses": "harnesses",
    "relay": "harnesses",
    "teams": "teams",
}
VIEWS = ("agents", "sessions", "sandboxes")
APP_OPTIONS = ("--view", "--session", "--context")  # the app's options that take a value


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lap-tui",
        description="A terminal control room for AI agents. Bare `lap-tui` opens the app.")
    parser.add_argument("--version", action="version", version=f"lap-tui {__version__}")
    parser.add_argument("--view", choices=VIEWS, help="open the app straight into one view")
    parser.add_argument("--session", metavar="ID", help="open the app straight into one session's chat")
    parser.add_argument("--read-only", action="store_true", help="the app changes nothing")
    parser.add_argument("--context", metavar="NAME",
                        help="the kubeconfig context for Kubernetes sandboxes (LAP_KUBE_CONTEXT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registered: set[str] = set()
    for name, module in COMMANDS.items():
        if module in registered or (only is not None and name != only):  # only="" registers none
            continue
        try:
            mod = importlib.import_module(f"lap_tui.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lap_tui.cli.{module}":
                continue  # a command whose module has not landed yet
            raise
        mod.register(sub)
        registered.add(module)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser becomes a default of its own namespace, the deepest winning,
    so an unknown option is reported with the usage of the subcommand it was given to."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.set_defaults(_parser=child)
                _remember_parsers(child)


def _words(argv: list[str]) -> list[str]:
    """The arguments that are not options nor an option's value (`--session ID`: none; the ID
    taken for a command built every subcommand's parser, importing each module: ~100 ms)."""
    out, value = [], False
    for a in argv:
        if value:
            value = False
        elif a in APP_OPTIONS:
            value = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the subcommand asked for: start-up stays fast as commands grow. Bare
    # `lap-tui` (the app) registers none, so its first paint pays for no subcommand module.
    words = _words(argv)
    wants_help = any(a in ("-h", "--help") for a in argv)
    only = words[0] if words and words[0] in COMMANDS else None
    if only is None and not wants_help and not (words and words[0] not in VIEWS):
        only = ""  # the app: no subcommands to register
    parser = build_parser(only)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "_parser", parser).error("unrecognized arguments: " + " ".join(unknown))
    if getattr(args, "context", None):
        os.environ["LAP_KUBE_CONTEXT"] = args.context  # read by load_settings, here and in workers it starts
    try:
        if args.command is None:
            from lap_tui.tui.launch import launch

            return launch(view=args.view, session=args.session, read_only=args.read_only)
        return asyncio.run(args.handler(args)) or 0
    except LapError as exc:
        print(f"lap-tui: {one_line(str(exc))}", file=sys.stderr)  # errors quote names from the store
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # `lap-tui journal X --json | head` is fine


if __name__ == "__main__":
    raise SystemExit(main())
