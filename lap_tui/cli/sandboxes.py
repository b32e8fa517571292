"""`lap-tui sandboxes list|exec|shell|logs|suspend|resume|delete`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from dataclasses import replace
from typing import Any

from lap_tui.cli.common import add_json_flag, emit_json, emit_json_lines, opened_backend, opened_store, plural, print_table, sanitiser
from lap_tui.config import load_settings
from lap_tui.domain.clock import epoch_from_iso
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.ids import MIN_PREFIX
from lap_tui.domain.names import clip
from lap_tui.domain.sandbox import SandboxStatus
from lap_tui.domain.text import one_line


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
    add_json_flag(lg)
    lg.add_argument("--raw", action="store_true",
                    help="print the lines exactly as stored (by default escape sequences and other controls, "
                         "which an agent's commands can hold, are neutralised)")
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
    p.add_argument("--json", action="store_true",
                   help="print one JSON object when it ends: exit_code, stdout, stderr (each up to 1 MiB), "
                        "truncation, timed_out, killed, duration_s")


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


async def _resolve(store: Any, backend: Any, ref: str, *, create: bool) -> str:
    """A sandbox id from a sandbox id or a unique prefix of one, or from a session id/prefix
    (creating its sandbox when asked)."""
    if await store.get_sandbox(ref) is not None:
        return ref
    # A prefix names a sandbox to delete or run in: as for ids, 4 characters at least.
    by_prefix = [r.id for r in await store.list_sandboxes() if r.id.startswith(ref)] if len(ref) >= MIN_PREFIX else []
    try:
        session = await store.get_session(ref)
    except (InvalidInput, NotFound):
        session = None
    if session is not None and by_prefix and by_prefix != [session.sandbox_ref]:
        raise InvalidInput(f"{clip(ref)!r} is both a session id prefix and a sandbox id prefix",
                           "give more of the id, or the sandbox's full name")
    if session is None:
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise InvalidInput(f"sandbox name prefix {clip(ref)!r} is ambiguous "
                               f"({plural(len(by_prefix), 'match', 'matches')})", "give more of the name")
        listed = await _listed(backend, ref)
        if listed is not None:
            return listed.id
        raise NotFound(f"no session or sandbox {clip(ref)!r}", f"give a prefix of {MIN_PREFIX} or more characters; "
                       "`lap-tui sandboxes list` and `lap-tui sessions list` show them")
    if session.sandbox_ref and await store.get_sandbox(session.sandbox_ref) is not None:
        return session.sandbox_ref
    if not create:
        raise NotFound(f"session {session.id} has no sandbox yet",
                       "`lap-tui sandboxes exec SESSION -- true` creates it")
    from lap_tui.sandbox import ensure_for_session

    agent = await store.get_agent_by_id(session.agent_id)
    return (await ensure_for_session(backend, store, agent, session)).id


async def _listed(backend: Any, ref: str) -> SandboxStatus | None:
    """A sandbox the store holds no row of (a warm pool's waiting one, an orphan, another
    lap-tui's): found in the backend's list by its id or a unique prefix, as the Sandboxes view
    finds it."""
    found = await backend.list()
    exact = [s for s in found if s.id == ref]
    if exact or len(ref) < MIN_PREFIX:
        return exact[0] if exact else None
    matches = [s for s in found if s.id.startswith(ref)]
    if len(matches) > 1:
        raise InvalidInput(f"sandbox name prefix {clip(ref)!r} is ambiguous "
                           f"({plural(len(matches), 'match', 'matches')})", "give more of the name")
    return matches[0] if matches else None


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
    async with opened_store(settings) as store, opened_backend(settings, store) as backend:
        statuses: list[SandboxStatus] = await backend.list()
        orphans = await store.orphan_sandbox_ids()
    statuses = [replace(s, orphan=True) if s.id in orphans and not s.orphan else s for s in statuses]
    if args.json:
        emit_json_lines(s.to_dict() for s in statuses)
        return 0
    now = time.time()
    # ORIGIN: a warm pool's sandbox waiting ("pooled") or given to a session ("claimed"); "" made for it.
    print_table(("NAME", "TEAM", "ORIGIN", "SESSION", "CONTEXT", "PHASE", "READY", "AGE", "LAST USED", "WARNING"),
                ((s.id, s.team, s.origin, (s.session_id or "")[:12] + (" (gone)" if s.orphan and s.session_id else ""),
                  s.context_key, s.phase.value + (" (orphan)" if s.orphan else ""),
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

    if args.json:  # nothing streamed: one object at the end, each stream masked whole
        on_output = None  # type: ignore[assignment]

    stdin = sys.stdin.buffer.read() if args.stdin else None
    async with opened_store(settings) as store, opened_backend(settings, store) as backend:
        sid = await _resolve(store, backend, args.session, create=True)
        if not args.raw:  # the values of the variables the agent names are secrets too
            rec = await store.get_sandbox(sid)
            names = (((rec.data or {}).get("settings") or {}).get("env") or ()) if rec else ()
            values = secret_values(settings, names)
            masks.update(stdout=StreamRedactor(values), stderr=StreamRedactor(values))
        try:
            result = await backend.exec(sid, cmd, cwd=args.cwd, timeout=args.timeout, stdin=stdin,
                                        on_output=on_output, max_output=(2**20 if args.json else 64 * 1024))
        finally:
            if not args.json:
                for name, out in outs.items():
                    out.write(masks[name].flush())
                    out.flush()
    if args.json:
        def text(name: str, data: bytes) -> str:
            return (masks[name].feed(data) + masks[name].flush()).decode("utf-8", "replace")

        emit_json({"sandbox": sid, "exit_code": result.exit_code, "stdout": text("stdout", result.stdout),
                   "stderr": text("stderr", result.stderr), "stdout_truncated": result.stdout_truncated,
                   "stderr_truncated": result.stderr_truncated, "timed_out": result.timed_out,
                   "killed": result.killed, "duration_s": round(result.duration_s, 3)})
        return result.exit_code
    if result.timed_out:
        print(f"lap-tui: the command was killed after {args.timeout:g} s (--timeout)", file=sys.stderr)
    elif result.killed:
        print(f"lap-tui: the command was killed ({result.killed})", file=sys.stderr)
    return result.exit_code


async def shell(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store, opened_backend(settings, store) as backend:
        sid = await _resolve(store, backend, args.session, create=True)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        ended: list[int] = []

        def end(sig: int) -> None:
            # Cancelling unwinds through the relay, which puts the terminal back before we exit.
            ended.append(sig)
            if task is not None:
                task.cancel()

        # Ctrl-C belongs to the shell (the relay's raw mode sends it there as a byte anyway).
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, end, sig)
        try:
            return await backend.shell(sid)
        except asyncio.CancelledError:
            if not ended:
                raise
            return 128 + ended[0]
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)


async def logs(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store, opened_backend(settings, store) as backend:
        sid = await _resolve(store, backend, args.session, create=False)
        lines = await backend.logs(sid, tail=args.tail)
    if args.json:
        emit_json_lines({"sandbox": sid, "line": line} for line in lines)
        return 0
    # The log quotes the commands an agent ran: model-written text, neutralised unless --raw.
    clean = (lambda s: s) if args.raw else sanitiser(settings).line
    for line in lines:
        print(clean(line))
    return 0


async def lifecycle(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store, opened_backend(settings, store) as backend:
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
        print(one_line(f"sandbox {sid}: {status.phase.value}" + (f"  [{status.warning}]" if status.warning else "")))
    return 0
