"""What every subcommand shares: settings, the store, and output for people and scripts.

Everything printed for people passes the one neutraliser (`lap_tui/domain/text.py`, the same
as the app's): names, titles, models and prompts come from the store, which any teammate's
process can write, and replies come from a model. JSON output escapes C1 controls, bidi and
invisible characters (`json_safe`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Sequence

from lap_tui.config import Settings, announce_private_paths, load_settings
from lap_tui.domain.text import Sanitiser, json_safe, one_line
from lap_tui.store import Store, open_store


@asynccontextmanager
async def opened_store(settings: Settings | None = None) -> AsyncIterator[Store]:
    settings = settings or load_settings()
    announce_private_paths(settings)
    store = await open_store(settings.database_url, create_dir=settings.may_create_database_dir)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def opened_backend(settings: Settings, store: Store, kind: str = "auto") -> AsyncIterator[Any]:
    """The sandbox backend for one command, closed after it (a cluster backend holds an HTTP
    session that would otherwise be reported unclosed at exit)."""
    from lap_tui.sandbox import backend_for

    backend = backend_for(settings, store, kind)
    try:
        yield backend
    finally:
        await backend.close()


async def delete_sandboxes_of(settings: Settings, store: Store, session_ids: Sequence[str], *,
                              keep: bool) -> list[str]:
    """The sandboxes that deleting these sessions leaves unused: deleted now (before the
    sessions, so a failure leaves nothing orphaned), or only named when `keep`."""
    ids = await store.sandboxes_left_unused(session_ids)
    if keep or not ids:
        return ids
    for sid in ids:
        record = await store.get_sandbox(sid)
        if record is not None:
            async with opened_backend(settings, store, record.backend) as backend:
                await backend.delete(sid)
    return ids


def sandboxes_note(ids: Sequence[str], *, kept: bool) -> str:
    """What happened to the sandboxes, for the one line a deletion prints."""
    if not ids:
        return ""
    names = ", ".join(ids)
    if kept:
        return (f"; kept {plural(len(ids), 'sandbox', 'sandboxes')} {names} "
                f"(`lap-tui sandboxes delete` removes {'it' if len(ids) == 1 else 'them'})")
    return f" and {plural(len(ids), 'sandbox', 'sandboxes')} {names} with its files"


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 session", "2 sessions", "0 sandboxes"."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts (one object per line for lists)")


def to_json(obj: Any) -> str:
    return json_safe(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def emit_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj) + "\n")


def emit_json_lines(objs: Iterable[Any]) -> None:
    out = sys.stdout
    for obj in objs:
        out.write(to_json(obj) + "\n")
    out.flush()


def sanitiser(settings: Settings) -> Sanitiser:
    """Neutralises, then masks every secret value this process knows of."""
    return Sanitiser(settings.redactor)


class SafeLogFormatter(logging.Formatter):
    """Log lines quote gateway errors, exceptions and store rows: neutralised and masked like
    every other output for people (a worker's stderr is often a terminal or a tmux pane)."""

    def __init__(self, clean: Sanitiser) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self._clean = clean

    def format(self, record: logging.LogRecord) -> str:
        return self._clean.clean(super().format(record))


def log_to_stderr(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeLogFormatter(sanitiser(settings)))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "nothing to show") -> None:
    rows = [["" if v is None else one_line(str(v)) for v in r] for r in rows]
    if not rows:
        print(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*headers).rstrip())
    for r in rows:
        print(fmt.format(*r).rstrip())


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    pairs = list(pairs)
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        print(f"{k + ':':<{width + 1}} {'' if v is None else one_line(str(v))}")


async def delete_virtual_keys_of(settings: Any, agent: Any, sessions: list[str]) -> None:
    """The sessions' LiteLLM virtual keys, when the agent uses them (best effort: a refusal is
    said on stderr, and the deletion goes on)."""
    from lap_tui.engine.relay_service import delete_virtual_keys

    note = await delete_virtual_keys(settings, agent, sessions)
    if note:
        print(f"lap-tui: {note}", file=sys.stderr)
