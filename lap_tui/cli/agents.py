"""`lap-tui agents create|list|show|edit|delete`."""

from __future__ import annotations

import argparse
from dataclasses import replace

from lap_tui.cli.common import (add_json_flag, delete_sandboxes_of, delete_virtual_keys_of, emit_json,
                                emit_json_lines, opened_store, plural, print_fields, print_table, sandboxes_note)
from lap_tui.config import load_settings
from lap_tui.domain.agent import GATEWAY_KEYS, HARNESSES, SANDBOX_BACKENDS, SCOPES, Agent, SandboxSettings
from lap_tui.domain.errors import Conflict, InvalidInput
from lap_tui.domain.ids import new_id
from lap_tui.domain.names import clip, validate_label


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agents", help="create, list, show, edit and delete agents")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    c = verbs.add_parser("create", help="create an agent")
    c.add_argument("name", help="a DNS-1123 label, unique within its team (e.g. code-reviewer)")
    c.add_argument("--model", required=True, help="a model the gateway serves")
    _add_team(c)
    _add_agent_options(c)
    add_json_flag(c)
    c.set_defaults(handler=create)

    ls = verbs.add_parser("list", help="list agents")
    ls.add_argument("--team", help="only this team (default: every team)")
    add_json_flag(ls)
    ls.set_defaults(handler=list_)

    sh = verbs.add_parser("show", help="show one agent")
    sh.add_argument("name")
    _add_team(sh)
    add_json_flag(sh)
    sh.set_defaults(handler=show)

    e = verbs.add_parser("edit", help="change an agent's settings")
    e.add_argument("name")
    _add_team(e)
    e.add_argument("--rename", metavar="NEW_NAME", help="give the agent a new name")
    e.add_argument("--model")
    _add_agent_options(e)
    add_json_flag(e)
    e.set_defaults(handler=edit)

    d = verbs.add_parser("delete", help="delete an agent (with --yes: its sessions, journals and sandboxes too)")
    d.add_argument("name")
    _add_team(d)
    d.add_argument("--yes", action="store_true", help="also delete the agent's sessions and their sandboxes")
    d.add_argument("--keep-sandbox", action="store_true",
                   help="keep the sessions' sandboxes and files (they are then listed as orphans)")
    add_json_flag(d)
    d.set_defaults(handler=delete)


def _add_team(p: argparse.ArgumentParser) -> None:
    p.add_argument("--team", help="the agent's team (default: LAP_TEAM or 'default')")


def _harness(name: str) -> str:
    """A defined harness (harnesses/ and the config dir's), checked when the agent is saved."""
    from lap_tui.engine.cli_turn import harness_definitions

    found = harness_definitions(load_settings())
    if name not in found:
        raise argparse.ArgumentTypeError(f"no harness {name!r}; defined: {', '.join(sorted(found))}")
    return name


def _add_agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="the system prompt")
    p.add_argument("--harness", metavar="NAME", type=_harness,
                   help=f"{', '.join(HARNESSES)}, or one defined in the config dir's harnesses/ "
                        "(`lap-tui harnesses list`)")
    p.add_argument("--sandbox-backend", choices=SANDBOX_BACKENDS)
    p.add_argument("--image", help="container image (kubernetes backend)")
    p.add_argument("--cpu", help="CPU limit, e.g. 1 or 500m")
    p.add_argument("--memory", help="memory limit, e.g. 1Gi")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--network", dest="network", action="store_true", default=None,
                     help="allow network access: the host's own network, so the sandbox also reaches the "
                          "host's loopback services and abstract unix sockets (docs/SECURITY.md)")
    net.add_argument("--no-network", dest="network", action="store_false", help="forbid network access")
    p.add_argument("--scope", choices=SCOPES, help="one sandbox per session, or shared per context")
    p.add_argument("--idle-suspend", type=int, metavar="SECONDS", help="suspend an idle sandbox after this")
    p.add_argument("--env", action="append", metavar="NAME",
                   help="an env var name the sandbox gets (repeatable; CONTAINER_ENV_* reach every sandbox)")
    p.add_argument("--warm-pool", type=int, metavar="N",
                   help="kubernetes: keep N sandboxes ready for new sessions (0: none; docs/KUBERNETES.md)")
    p.add_argument("--gateway-key", choices=GATEWAY_KEYS,
                   help="CLI harnesses: relay (the relay swaps in the gateway's key; default) or virtual "
                        "(a LiteLLM virtual key per session, with --key-budget/--key-ttl; docs/HARNESSES.md)")
    p.add_argument("--key-budget", type=float, metavar="USD",
                   help="with --gateway-key virtual: each session's key may spend this much (0: no budget)")
    p.add_argument("--key-ttl", metavar="DURATION",
                   help="with --gateway-key virtual: each session's key expires after this, e.g. 12h or 7d "
                        "('' : never)")


def _team(args: argparse.Namespace) -> str:
    return validate_label("team", args.team or load_settings()["team"])


def _sandbox_changes(args: argparse.Namespace, base: SandboxSettings) -> SandboxSettings:
    changes = {k: v for k, v in {
        "backend": args.sandbox_backend, "image": args.image, "cpu": args.cpu, "memory": args.memory,
        "network": args.network, "scope": args.scope, "idle_suspend_seconds": args.idle_suspend,
        "env": tuple(args.env) if args.env is not None else None, "warm_pool": args.warm_pool,
        "gateway_key": args.gateway_key, "key_budget_usd": args.key_budget, "key_ttl": args.key_ttl,
    }.items() if v is not None}
    return replace(base, **changes)


async def create(args: argparse.Namespace) -> int:
    agent = Agent(id=new_id(), name=args.name, team=_team(args), model=args.model,
                  system_prompt=args.prompt or "", harness=args.harness or "builtin",
                  sandbox=_sandbox_changes(args, SandboxSettings())).validate()
    settings = load_settings()
    async with opened_store(settings) as store:
        agent = await store.create_agent(agent)
        await _warm(settings, store, agent)
    _print_agent(agent, args.json)
    return 0


async def list_(args: argparse.Namespace) -> int:
    async with opened_store() as store:
        agents = await store.list_agents(args.team)
    if args.json:
        emit_json_lines(a.to_dict() for a in agents)
    else:
        print_table(("TEAM", "NAME", "MODEL", "HARNESS", "SANDBOX", "NETWORK"),
                    ((a.team, a.name, a.model, a.harness, a.sandbox.backend, "yes" if a.sandbox.network else "no")
                     for a in agents), empty="no agents yet: create one with `lap-tui agents create NAME --model M`")
    return 0


async def show(args: argparse.Namespace) -> int:
    async with opened_store() as store:
        agent = await store.get_agent(args.name, _team(args))
        sessions = await store.count_sessions(agent.id)
    if args.json:
        emit_json({**agent.to_dict(), "sessions": sessions})
    else:
        _print_agent(agent, False, sessions)
    return 0


_EDIT_OPTIONS = ("rename", "model", "prompt", "harness", "sandbox_backend", "image", "cpu", "memory", "network",
                 "scope", "idle_suspend", "env", "warm_pool", "gateway_key", "key_budget", "key_ttl")


async def edit(args: argparse.Namespace) -> int:
    if all(getattr(args, name) is None for name in _EDIT_OPTIONS):
        raise InvalidInput(f"nothing to change for agent {clip(args.name)!r}",
                           "pass what to change, e.g. --model M, --prompt TEXT, --memory 2Gi or --rename NEW_NAME "
                           "(`lap-tui agents edit -h` lists them)")
    async with opened_store() as store:
        agent = changed_from = await store.get_agent(args.name, _team(args))
        changed = replace(
            agent,
            name=args.rename or agent.name,
            model=args.model if args.model is not None else agent.model,
            system_prompt=args.prompt if args.prompt is not None else agent.system_prompt,
            harness=args.harness or agent.harness,
            sandbox=_sandbox_changes(args, agent.sandbox),
        )
        agent = await store.update_agent(changed)
        await _warm(load_settings(), store, agent, before=changed_from.sandbox.warm_pool)
    _print_agent(agent, args.json)
    return 0


async def delete(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        agent = await store.get_agent(args.name, _team(args))
        count = await store.count_sessions(agent.id)
        if count and not args.yes:
            raise Conflict(f"agent {agent.name!r} has {plural(count, 'session')}; deleting it deletes "
                           f"{'it' if count == 1 else 'them'}, {'its journal' if count == 1 else 'their journals'}"
                           " and sandboxes", "pass --yes to delete them too (--keep-sandbox keeps the sandboxes)")
        sessions = [s.id for s in await store.list_sessions(agent.id, limit=max(count, 1))]
        sandboxes = await delete_sandboxes_of(settings, store, sessions, keep=args.keep_sandbox)
        await delete_virtual_keys_of(settings, agent, sessions)
        await _warm(settings, store, agent, deleted=True, keep=args.keep_sandbox)  # its template, pool and claims
        deleted = await store.delete_agent(agent.id)
    if args.json:
        emit_json({"deleted": agent.name, "team": agent.team, "sessions_deleted": deleted,
                   ("sandboxes_kept" if args.keep_sandbox else "sandboxes_deleted"): sandboxes})
    else:
        print(f"deleted agent {agent.name} (team {agent.team}) and {plural(deleted, 'session')}"
              + sandboxes_note(sandboxes, kept=args.keep_sandbox))
    return 0


async def _warm(settings, store, agent: Agent, **kw: object) -> None:  # type: ignore[no-untyped-def]
    """The agent's warm pool in the cluster follows it (engine/pools.py)."""
    from lap_tui.engine.pools import follow_agent

    await follow_agent(settings, store, agent, **kw)


def _print_agent(agent: Agent, as_json: bool, sessions: int | None = None) -> None:
    if as_json:
        emit_json(agent.to_dict())
        return
    sb = agent.sandbox
    print_fields([
        ("name", agent.name), ("team", agent.team), ("id", agent.id), ("model", agent.model),
        ("harness", agent.harness), ("prompt", agent.system_prompt or "(none)"),
        ("sandbox", f"{sb.backend}, {sb.scope} scope, cpu {sb.cpu}, memory {sb.memory}, "
                    f"network {'allowed' if sb.network else 'off'}, idle suspend {sb.idle_suspend_seconds}s"
                    + (f", warm pool {sb.warm_pool}" if sb.warm_pool else "")),
        ("gateway key", "relay (the gateway's key, swapped in by the relay)" if sb.gateway_key == "relay" else
         "a LiteLLM virtual key per session" + (f", budget ${sb.key_budget_usd:g}" if sb.key_budget_usd else "")
         + (f", expires after {sb.key_ttl}" if sb.key_ttl else "")),
        ("image", sb.image or "(default)"), ("env", ", ".join(sb.env) or "(none)"),
        *([("sessions", sessions)] if sessions is not None else []),
        ("created", agent.created_at), ("updated", agent.updated_at),
    ])
