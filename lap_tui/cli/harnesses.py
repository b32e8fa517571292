"""`lap-tui harnesses list|install` and `lap-tui relay` (the gateway relay for CLI harnesses)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lap_tui.cli.common import add_json_flag, emit_json_lines, print_table
from lap_tui.config import load_settings
from lap_tui.domain.errors import NotFound


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("harnesses", help="the harnesses agents can use, and installing their CLIs")
    hs = p.add_subparsers(dest="harnesses_command", metavar="ACTION", required=True)
    ls = hs.add_parser("list", help="every harness defined (harnesses/ and the config dir) and whether installed")
    add_json_flag(ls)
    ls.set_defaults(handler=list_harnesses)
    ins = hs.add_parser("install", help="npm-install the pinned CLI of a harness (into $LAP_HARNESS_DIR)")
    ins.add_argument("names", nargs="*", metavar="NAME")
    ins.add_argument("--all", action="store_true", help="every CLI harness")
    ins.set_defaults(handler=install)
    r = sub.add_parser("relay", help="run the gateway relay for CLI harnesses (started on demand by lap-tui)")
    r.add_argument("--socket", help="the unix socket to listen on (default: <data dir>/relay/sock/relay.sock)")
    r.add_argument("--idle-exit", type=float, default=3600.0, metavar="SECONDS",
                   help="exit after this long with no request")
    r.set_defaults(handler=relay)


def _definitions(settings):  # type: ignore[no-untyped-def]
    from lap_tui.harness.definition import load_definitions, user_harness_dirs

    found, problems = load_definitions(*user_harness_dirs(settings.config_file))
    for p in problems:
        print(f"lap-tui: skipped {p}", file=sys.stderr)
    return found


async def list_harnesses(args: argparse.Namespace) -> int:
    from lap_tui.harness.cli import harness_root, installed_bin

    settings = load_settings()
    root = harness_root(settings.data_dir)
    rows = []
    for h in sorted(_definitions(settings).values(), key=lambda h: (h.kind != "builtin", h.name)):
        installed = True if not h.is_cli else installed_bin(root, h) is not None
        rows.append({"name": h.name, "kind": h.kind, "api": h.api if h.is_cli else None,
                     "package": f"{h.npm}@{h.version}" if h.is_cli else None, "installed": installed,
                     "description": h.description, "source": h.source,
                     "dockerfile": str(h.dockerfile) if h.dockerfile else None})
    if args.json:
        emit_json_lines(rows)
    else:
        print_table(["NAME", "KIND", "PACKAGE", "INSTALLED", "DESCRIPTION"],
                    [[r["name"], r["kind"], r["package"] or "-", "yes" if r["installed"] else "no", r["description"]]
                     for r in rows], empty="no harnesses defined")
    return 0


async def install(args: argparse.Namespace) -> int:
    import asyncio

    from lap_tui.harness.cli import harness_root
    from lap_tui.harness.cli import install as npm_install

    settings = load_settings()
    found = _definitions(settings)
    names = [n for n, h in found.items() if h.is_cli] if args.all else list(args.names)
    if not names:
        print("lap-tui: name a harness to install, or --all", file=sys.stderr)
        return 2
    root = harness_root(settings.data_dir)
    for name in names:
        h = found.get(name)
        if h is None:
            raise NotFound(f"no harness {name!r}", "`lap-tui harnesses list` shows them")
        if not h.is_cli:
            print(f"{name}: built in, nothing to install")
            continue
        target = await asyncio.to_thread(npm_install, root, h)
        print(f"{name}: {h.npm}@{h.version} in {target}")
    return 0


async def relay(args: argparse.Namespace) -> int:
    from lap_tui.cli.common import log_to_stderr, opened_store
    from lap_tui.engine.relay_service import serve, socket_path

    settings = load_settings()
    log_to_stderr(settings)  # neutralised and masked
    path = Path(args.socket) if args.socket else socket_path(settings)
    async with opened_store(settings) as store:
        code = await serve(settings, store, path, idle_exit=args.idle_exit)
    if code:
        print(f"lap-tui: another relay already serves {path}", file=sys.stderr)
    return code
