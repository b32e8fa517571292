"""`lap-tui worker [--once]`: run queued and unfinished turns headless."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from lap_tui.cli.common import emit_json, log_to_stderr, opened_store, plural
from lap_tui.config import load_settings
from lap_tui.domain.errors import LapError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run queued and unfinished turns with no terminal (tmux pane, Deployment)")
    p.add_argument("--once", action="store_true", help="drain what is runnable now, then exit")
    p.add_argument("--poll", type=float, default=0.5, metavar="SECONDS", help="how often to look for new turns")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per turn driven, when it stops (turn_id, session_id, status, error, "
                        "tokens, cost_usd); the log stays on stderr")
    p.add_argument("--health-port", type=int, default=None, metavar="PORT",
                   help="serve /livez (the loop runs) and /readyz (the store answers) on this port, for probes")
    p.add_argument("--health-host", default="0.0.0.0", metavar="ADDRESS", help="where the health port listens")
    p.add_argument("--grace", type=float, default=20.0, metavar="SECONDS",
                   help="on SIGTERM: how long the steps under way may take before they are cut short and "
                        "handed back (keep it below the pod's terminationGracePeriodSeconds)")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    from lap_tui.engine.drain import DrainFence
    from lap_tui.engine.health import WorkerHealth, serve_health
    from lap_tui.engine.services import build_engine
    from lap_tui.engine.worker import run_worker

    settings = load_settings()
    log_to_stderr(settings)  # neutralised and masked
    # SIGTERM (a Deployment scaling down or rolling) and Ctrl-C: stop taking turns, hand the
    # ones under way back at a checkpoint, release their leases, exit 0.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = WorkerHealth(stale_after=max(60.0, 20 * args.poll))
    server = None
    if args.health_port is not None:
        try:
            server = await serve_health(health, args.health_port, args.health_host)
        except OSError as exc:
            raise LapError(f"the health port {args.health_port} cannot be opened: {exc.strerror}",
                           "choose another --health-port") from None
        host, port = server.sockets[0].getsockname()[:2]
        logging.getLogger("lap_tui.worker").info("health probes on http://%s:%s/livez and /readyz", host, port)
    async with opened_store(settings) as store:
        fence = DrainFence(store)
        engine = build_engine(settings, fence)  # type: ignore[arg-type]  # a Store by delegation
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
            driven = await run_worker(engine, once=args.once, poll_interval=args.poll, health=health,
                                      stop=stop, fence=fence, grace=args.grace)
        finally:
            await engine.close()
            if server is not None:
                server.close()
    logging.getLogger("lap_tui.worker").info("worker done: drove %s", plural(driven, "session"))
    return 0
