"""`lap-tui journal SESSION [--json] [--follow]`."""

from __future__ import annotations

import argparse
import json
import sys

from lap_tui.cli.common import add_json_flag, opened_store, sanitiser
from lap_tui.config import load_settings
from lap_tui.domain.journal import JournalEvent
from lap_tui.domain.text import Sanitiser, json_safe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("journal", help="print a session's journal (JSON: one event per line)")
    p.add_argument("session", help="the session id or a unique prefix")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they come")
    p.add_argument("--last", type=int, metavar="N", help="start with only the last N events")
    add_json_flag(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    clean = sanitiser(settings)
    async with opened_store(settings) as store:
        session = await store.get_session(args.session)
        if args.last is not None:
            events = await store.last_events(session.id, max(0, args.last))
        else:
            events = await store.read_events(session.id)
        seen = session.last_seq if not events else events[-1].seq
        for ev in events:
            _print(ev, args.json, clean)
        while True:  # page through the rest if the journal grew while we read
            more = await store.read_events(session.id, after_seq=seen, limit=1000)
            if not more:
                break
            for ev in more:
                _print(ev, args.json, clean)
            seen = more[-1].seq
        sys.stdout.flush()
        if args.follow:
            async for ev in store.follow(session.id, after_seq=seen):
                _print(ev, args.json, clean)
                sys.stdout.flush()
    return 0


def _print(ev: JournalEvent, as_json: bool, clean: Sanitiser) -> None:
    """Every field of a row is untrusted (any process can write the store): JSON keeps the text
    exact but escapes what a terminal would act on; the table neutralises and masks."""
    if as_json:
        sys.stdout.write(json_safe(ev.to_json()) + "\n")
        return
    data = clean.line(json_safe(json.dumps(ev.data, ensure_ascii=False)))  # masked before it is cut
    if len(data) > 200:
        data = data[:197] + "..."
    turn, kind, at = (clean.line(v) for v in ((ev.turn_id or "-")[:8], ev.kind, ev.at[:23].replace("T", " ")))
    sys.stdout.write(f"{ev.seq:>6} {at} {turn:<8} {kind:<16} {data}\n")
