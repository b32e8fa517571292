"""`lap-tui sandboxes list|exec|shell|logs|suspend|resume|delete`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from lap_tui.cli.common import add_json_flag, emit_json, emit_json_lines, opened_store, print_table
from lap_tui.config import Settings, load_settings
from lap_tui.domain.clock import epoch_from_iso
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import SandboxStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandboxes", help="list sandboxes, run commands in them, suspend, resume, delete")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    ls = verbs.add_parser("list", help="list sandboxes with their phase")
    add_json_flag(ls)
    ls.set_defaults(handler=list_)

    e = verbs.add_parser("exec", help="run a command in a session's sandbox; exits with its exit code",
                         usage="lap-tui sandboxes exec SESSION [options] -- CMD [ARG...]")
    e.add_argument("session", help="a session id (or unique prefix), or a sandbox id")
    _exec_options(e)
    e.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    e.set_defaults(handler=exec_)

    sh = verbs.add_parser("shell", help="an interactive shell in a session's sandbox")
    sh.add_argument("session")
    sh.set_defaults(handler=shell)

    lg = verbs.add_parser("logs", help="a sandbox's event log")
    lg.add_argument("session")
    lg.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    lg.set_defaults(handler=logs)

    for verb, helptext in (("suspend", "stop a sandbox's processes, keep its files"),
                           ("resume", "make a suspended sandbox ready again"),
                           ("delete", "stop a sandbox's processes and delete it with its files")):
        v = verbs.add_parser(verb, help=helptext)
        v.add_argument("session")
        add_json_flag(v)
        v.set_defaults(handler=lifecycle, action=verb)


def _exec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before the command is killed (600)")
    p.add_argument("--cwd", help="working directory inside the sandbox (default /workspace)")
    p.add_argument("--stdin", action="store_true", help="pass this process's standard input to the command")
    p.add_argument("--raw", action="store_true", help="do not mask secret values in the output")


def _split_command(args: argparse.Namespace) -> list[str]:
    """Options may sit between SESSION and `--`; REMAINDER captured them with the command."""
    cmd = list(args.cmd)
    if "--" in cmd:
        i = cmd.index("--")
        before, cmd = cmd[:i], cmd[i + 1:]
        if before:
            opts = argparse.ArgumentParser(prog="lap-tui sandboxes exec SESSION", add_help=False)
            _exec_options(opts)
            opts.parse_args(before, namespace=args)
    return cmd


def _backend(settings: Settings, store: Any, kind: str = "auto") -> Any:
    from lap_tui.sandbox import backend_for

    return backend_for(settings, store, kind)


async def _resolve(store: Any, backend: Any, ref: str, *, create: bool) -> str:
    """A sandbox id from a sandbox id, or from a session id/prefix (creating it when asked)."""
    if await store.get_sandbox(ref) is not None:
        return ref
    try:
        session = await store.get_session(ref)
    except (InvalidInput, NotFound):
        raise NotFound(f"no session or sandbox {ref!r}", "`lap-tui sandboxes list` and "
                       "`lap-tui sessions list` show them") from None
    if session.sandbox_ref and await store.get_sandbox(session.sandbox_ref) is not None:
        return session.sandbox_ref
    if not create:
        raise NotFound(f"session {session.id} has no sandbox yet",
                       "`lap-tui sandboxes exec SESSION -- true` creates it")
    from lap_tui.sandbox import ensure_for_session

    agent = await store.get_agent_by_id(session.agent_id)
    return (await ensure_for_session(backend, store, agent, session)).id


def _age(iso: str | None, now: float) -> str:
    if not iso:
        return ""
    s = int(now - epoch_from_iso(iso))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{max(s, 0)}s"


async def list_(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        statuses: list[SandboxStatus] = await _backend(settings, store, "local").list()
    if args.json:
        emit_json_lines(s.to_dict() for s in statuses)
        return 0
    now = time.time()
    print_table(("NAME", "TEAM", "SESSION", "CONTEXT", "PHASE", "READY", "AGE", "LAST USED", "WARNING"),
                ((s.id, s.team, (s.session_id or "")[:12], s.context_key, s.phase.value,
                  "yes" if s.ready else "no", _age(s.created_at, now), _age(s.last_used_at, now),
                  s.warning or "") for s in statuses),
                empty="no sandboxes yet: `lap-tui sandboxes exec SESSION -- CMD` creates one")
    return 0


async def exec_(args: argparse.Namespace) -> int:
    cmd = _split_command(args)
    if not cmd:
        raise InvalidInput("no command given", "lap-tui sandboxes exec SESSION -- CMD [ARG...]")
    settings = load_settings()
    from lap_tui.sandbox.env import secret_values
    from lap_tui.sandbox.output import StreamRedactor

    masks = {"stdout": StreamRedactor([] if args.raw else secret_values(settings)),
             "stderr": StreamRedactor([] if args.raw else secret_values(settings))}
    outs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}

    def on_output(name: str, chunk: bytes) -> None:
        out = outs[name]
        out.write(masks[name].feed(chunk))
        out.flush()

    stdin = sys.stdin.buffer.read() if args.stdin else None
    async with opened_store(settings) as store:
        backend = _backend(settings, store)
        sid = await _resolve(store, backend, args.session, create=True)
        try:
            result = await backend.exec(sid, cmd, cwd=args.cwd, timeout=args.timeout, stdin=stdin,
                                        on_output=on_output, max_output=64 * 1024)
        finally:
            for name, out in outs.items():
                out.write(masks[name].flush())
                out.flush()
    if result.timed_out:
        print(f"lap-tui: the command was killed after {args.timeout:g} s (--timeout)", file=sys.stderr)
    elif result.killed:
        print(f"lap-tui: the command was killed ({result.killed})", file=sys.stderr)
    return result.exit_code


async def shell(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        backend = _backend(settings, store)
        sid = await _resolve(store, backend, args.session, create=True)
        loop = asyncio.get_running_loop()
        # Ctrl-C belongs to the shell now, not to lap-tui.
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        try:
            return await backend.shell(sid)
        finally:
            loop.remove_signal_handler(signal.SIGINT)


async def logs(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        backend = _backend(settings, store)
        sid = await _resolve(store, backend, args.session, create=False)
        lines = await backend.logs(sid, tail=args.tail)
    for line in lines:
        print(line)
    return 0


async def lifecycle(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        backend = _backend(settings, store)
        sid = await _resolve(store, backend, args.session, create=False)
        if args.action == "delete":
            await backend.delete(sid)
            status = None
        else:
            status = await getattr(backend, args.action)(sid)
    if args.json:
        emit_json(status.to_dict() if status else {"deleted": sid})
    elif status is None:
        print(f"deleted sandbox {sid} and its workspace")
    else:
        print(f"sandbox {sid}: {status.phase.value}" + (f"  [{status.warning}]" if status.warning else ""))
    return 0
