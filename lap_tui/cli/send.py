"""`lap-tui send SESSION TEXT [--wait] [--json]`: queue a turn; with --wait, see it through."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from lap_tui.cli.common import add_json_flag, emit_json, opened_store, sanitiser
from lap_tui.config import load_settings
from lap_tui.domain.journal import EventKind, JournalEvent, TurnStatus
from lap_tui.store.base import Store

_ENDS = {EventKind.TURN_COMPLETED: TurnStatus.COMPLETED, EventKind.TURN_FAILED: TurnStatus.FAILED,
         EventKind.TURN_CANCELLED: TurnStatus.CANCELLED}


async def _turn_end(store: Store, session_id: str, turn_id: str) -> JournalEvent:
    """The journal's last word on the turn, waiting for it if need be. The follow starts from a
    seq read before the turn's events are looked at, so an end written in between is not missed."""
    after = await store.last_seq(session_id)
    for ev in await store.read_events(session_id, turn_id=turn_id):
        if ev.kind in _ENDS:
            return ev
    async for ev in store.follow(session_id, after_seq=after):
        if ev.turn_id == turn_id and ev.kind in _ENDS:
            return ev
    raise AssertionError("unreachable: follow only ends when cancelled")


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
            end = await _turn_end(store, session.id, turn_id)
            turn = await store.get_turn(turn_id)
            if turn.status is not _ENDS[end.kind]:
                # The driver writes the journal first and the turn's row just after (another
                # process, seen at once through LISTEN/NOTIFY): the journal decides.
                turn = replace(turn, status=_ENDS[end.kind], error=end.data.get("reason", turn.error))
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
        print(sanitiser(settings).clean(reply))  # a model's text must not drive the terminal
    if turn.status is TurnStatus.FAILED:
        print(f"lap-tui: the turn failed: {sanitiser(settings).line(turn.error or '')}", file=sys.stderr)
        return 1
    if turn.status is TurnStatus.CANCELLED:
        print("lap-tui: the turn was cancelled", file=sys.stderr)
        return 1
    return 0
