"""`lap-tui sessions new|list|show|delete`."""

from __future__ import annotations

import argparse

from lap_tui.cli.common import (add_json_flag, delete_sandboxes_of, delete_virtual_keys_of, emit_json,
                                emit_json_lines, opened_store, plural, print_fields, print_table, sandboxes_note)
from lap_tui.config import load_settings
from lap_tui.domain.ids import new_id
from lap_tui.domain.names import validate_label
from lap_tui.domain.session import Session


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sessions", help="create, list, show and delete sessions")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    n = verbs.add_parser("new", help="start a session with an agent; prints its id")
    n.add_argument("agent", help="the agent's name")
    n.add_argument("--team", help="the agent's team (default: LAP_TEAM or 'default')")
    n.add_argument("--title", default="", help="a title for lists")
    n.add_argument("--context", metavar="KEY", help="share the sandbox with the team's sessions of this context")
    add_json_flag(n)
    n.set_defaults(handler=new)

    ls = verbs.add_parser("list", help="list sessions, most recently active first")
    ls.add_argument("--agent", help="only this agent's sessions")
    ls.add_argument("--team", help="the agent's team (with --agent)")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json_flag(ls)
    ls.set_defaults(handler=list_)

    sh = verbs.add_parser("show", help="show one session")
    sh.add_argument("session", help="the session id or a unique prefix")
    add_json_flag(sh)
    sh.set_defaults(handler=show)

    d = verbs.add_parser("delete", help="delete a session, its journal and its sandbox")
    d.add_argument("session")
    d.add_argument("--keep-sandbox", action="store_true",
                   help="keep the session's sandbox and files (it is then listed as an orphan)")
    add_json_flag(d)
    d.set_defaults(handler=delete)


async def new(args: argparse.Namespace) -> int:
    team = validate_label("team", args.team or load_settings()["team"])
    async with opened_store() as store:
        agent = await store.get_agent(args.agent, team)
        session = Session(id=new_id(), agent_id=agent.id, title=args.title, context_key=args.context).validate()
        session = await store.create_session(session)
    if args.json:
        emit_json(session.to_dict())
    else:
        print(session.id)
    return 0


async def list_(args: argparse.Namespace) -> int:
    async with opened_store() as store:
        agent_id = None
        if args.agent:
            team = validate_label("team", args.team or load_settings()["team"])
            agent_id = (await store.get_agent(args.agent, team)).id
        sessions = await store.list_sessions(agent_id, limit=max(1, args.limit))
    if args.json:
        emit_json_lines(s.to_dict() for s in sessions)
    else:
        print_table(("ID", "AGENT", "TEAM", "STATUS", "TITLE", "UPDATED", "TOKENS", "COST"),
                    ((s.id, s.agent_name, s.team, s.status.value, s.title, s.updated_at[:19].replace("T", " "),
                      s.prompt_tokens + s.completion_tokens, f"${s.cost_usd:.4f}") for s in sessions),
                    empty="no sessions yet: start one with `lap-tui sessions new AGENT`")
    return 0


async def show(args: argparse.Namespace) -> int:
    async with opened_store() as store:
        s = await store.get_session(args.session)
    if args.json:
        emit_json(s.to_dict())
    else:
        print_fields([("id", s.id), ("agent", f"{s.agent_name} (team {s.team})"), ("title", s.title),
                      ("status", s.status.value), ("context", s.context_key), ("sandbox", s.sandbox_ref),
                      ("events", s.last_seq),
                      ("tokens", f"{s.prompt_tokens} in, {s.completion_tokens} out"),
                      ("cost", f"${s.cost_usd:.4f}"), ("created", s.created_at), ("updated", s.updated_at)])
    return 0


async def delete(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        s = await store.get_session(args.session)
        sandboxes = await delete_sandboxes_of(settings, store, [s.id], keep=args.keep_sandbox)
        await delete_virtual_keys_of(settings, await store.get_agent_by_id(s.agent_id), [s.id])
        await store.delete_session(s.id)
    if args.json:
        emit_json({"deleted": s.id, ("sandboxes_kept" if args.keep_sandbox else "sandboxes_deleted"): sandboxes})
    else:
        print(f"deleted session {s.id}, its {plural(s.last_seq, 'journal event')}"
              + sandboxes_note(sandboxes, kept=args.keep_sandbox))
    return 0
