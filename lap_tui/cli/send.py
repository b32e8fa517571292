"""`lap-tui send SESSION TEXT [--wait] [--json]`: queue a turn; with --wait, see it through."""

from __future__ import annotations

import argparse
import sys

from lap_tui.cli.common import add_json_flag, emit_json, opened_store
from lap_tui.config import load_settings
from lap_tui.domain.journal import EventKind, TurnStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("send", help="send a message to a session (queues a turn)")
    p.add_argument("session", help="the session id or a unique prefix")
    p.add_argument("text", help="the message; '-' reads it from standard input")
    p.add_argument("--wait", action="store_true",
                   help="run the turn here (or follow the process that runs it) and print the reply")
    add_json_flag(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    from lap_tui.engine.services import build_engine

    text = sys.stdin.read() if args.text == "-" else args.text
    settings = load_settings()
    async with opened_store(settings) as store:
        session = await store.get_session(args.session)
        engine = build_engine(settings, store)
        try:
            turn_id = await engine.queue(session.id, text)
            if not args.wait:
                if args.json:
                    emit_json({"turn_id": turn_id, "session_id": session.id, "status": "queued"})
                else:
                    print(turn_id)
                return 0
            # Drive it here unless a worker or a terminal already drives this session.
            await engine.drive_session(session.id)
            turn = await store.get_turn(turn_id)
            if not turn.status.finished:
                async for ev in store.follow(session.id, after_seq=await store.last_seq(session.id)):
                    if ev.turn_id == turn_id and ev.kind in (EventKind.TURN_COMPLETED, EventKind.TURN_FAILED,
                                                             EventKind.TURN_CANCELLED):
                        break
                turn = await store.get_turn(turn_id)
            reply = ""
            for ev in await store.read_events(session.id, turn_id=turn_id):
                if ev.kind == EventKind.MODEL_MESSAGE and ev.data.get("text"):
                    reply = ev.data["text"]
        finally:
            await engine.close()
    if args.json:
        emit_json({"turn_id": turn_id, "session_id": session.id, "status": turn.status.value, "reply": reply,
                   "prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
                   "cost_usd": turn.cost_usd, "error": turn.error})
    elif reply:
        print(reply)
    if turn.status is TurnStatus.FAILED:
        print(f"lap-tui: the turn failed: {turn.error}", file=sys.stderr)
        return 1
    if turn.status is TurnStatus.CANCELLED:
        print("lap-tui: the turn was cancelled", file=sys.stderr)
        return 1
    return 0
