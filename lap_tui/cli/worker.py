"""`lap-tui worker [--once]`: run queued and unfinished turns headless."""

from __future__ import annotations

import argparse
import logging
import sys

from lap_tui.cli.common import emit_json, log_to_stderr, opened_store, plural
from lap_tui.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run queued and unfinished turns with no terminal (tmux pane, Deployment)")
    p.add_argument("--once", action="store_true", help="drain what is runnable now, then exit")
    p.add_argument("--poll", type=float, default=0.5, metavar="SECONDS", help="how often to look for new turns")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per turn driven, when it stops (turn_id, session_id, status, error, "
                        "tokens, cost_usd); the log stays on stderr")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    from lap_tui.engine.services import build_engine
    from lap_tui.engine.worker import run_worker

    settings = load_settings()
    log_to_stderr(settings)  # neutralised and masked
    async with opened_store(settings) as store:
        engine = build_engine(settings, store)
        if args.json:
            async def report(turn_id: str) -> None:
                turn = await store.get_turn(turn_id)
                emit_json({"event": "turn.driven", "turn_id": turn.id, "session_id": turn.session_id,
                           "status": turn.status.value, "error": turn.error, "prompt_tokens": turn.prompt_tokens,
                           "completion_tokens": turn.completion_tokens, "cost_usd": turn.cost_usd})
                sys.stdout.flush()

            engine.on_turn_driven = report
        logging.getLogger("lap_tui.worker").info("worker %s started on %s", engine.holder, store.display_url)
        try:
            driven = await run_worker(engine, once=args.once, poll_interval=args.poll)
        finally:
            await engine.close()
    logging.getLogger("lap_tui.worker").info("worker done: drove %s", plural(driven, "session"))
    return 0
