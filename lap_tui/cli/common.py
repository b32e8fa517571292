"""What every subcommand shares: settings, the store, and output for people and scripts."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Sequence

from lap_tui.config import Settings, load_settings
from lap_tui.store import Store, open_store


@asynccontextmanager
async def opened_store(settings: Settings | None = None) -> AsyncIterator[Store]:
    settings = settings or load_settings()
    store = await open_store(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts (one object per line for lists)")


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def emit_json_lines(objs: Iterable[Any]) -> None:
    out = sys.stdout
    for obj in objs:
        out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "nothing to show") -> None:
    rows = [["" if v is None else str(v) for v in r] for r in rows]
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
        print(f"{k + ':':<{width + 1}} {'' if v is None else v}")
