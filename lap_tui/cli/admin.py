"""`lap-tui migrate` and `lap-tui config`."""

from __future__ import annotations

import argparse

from lap_tui.cli.common import add_json_flag, emit_json, print_table
from lap_tui.config import load_settings
from lap_tui.domain.text import one_line
from lap_tui.store import open_store


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("migrate", help="apply pending database migrations (also done at every start)")
    m.add_argument("--create", action="store_true",
                   help="create the SQLite database's folder if it is missing (as LAP_CREATE_DB=1 does)")
    add_json_flag(m)
    m.set_defaults(handler=migrate)
    c = sub.add_parser("config", help="show the effective settings and where each came from (secrets masked)")
    add_json_flag(c)
    c.set_defaults(handler=config)


async def migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = await open_store(settings.database_url, migrate=False,
                             create_dir=args.create or settings.may_create_database_dir)
    try:
        report = await store.migrate()
        url = store.display_url
    finally:
        await store.close()
    if args.json:
        emit_json({"database": url, "before": report.before, "after": report.after, "applied": list(report.applied)})
    elif report.applied:
        print(f"{url}: schema {report.before} -> {report.after} (applied {', '.join(report.applied)})")
    else:
        print(f"{url}: schema {report.after}, up to date")
    return 0


async def config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lap_tui.config import gateway_refusal

    settings = load_settings(check_gateway=False)  # show a refused gateway (and why) instead of failing
    desc = settings.describe()
    refused = gateway_refusal(settings.values, Path.cwd() / ".env")
    desc["gateway_refused"] = f"{refused[0]} ({refused[1]})" if refused else None
    from lap_tui.sandbox.k8s.summary import kube_summary

    desc["kubernetes"] = kube_summary(settings)
    if args.json:
        emit_json(desc)
        return 0

    def say(text: str) -> None:  # values come from the environment, .env and files: one neutralised line
        print(one_line(text))

    rows = [(name, v["value"], v["source"]) for name, v in desc.items() if isinstance(v, dict) and "source" in v]
    rows += [(f"CONTAINER_ENV_{k}", v["value"], v["source"]) for k, v in desc["container_env"].items()]
    rows += [(f"{k} (team {t} only)", v["value"], v["source"]) for t, names in desc["team_env"].items()
             for k, v in names.items()]
    print_table(("SETTING", "VALUE", "SOURCE"), rows)
    if refused:
        print()
        say(f"gateway:     refused: {desc['gateway_refused']}")
    print()
    if desc["config_file"]:
        say(f"config file: {desc['config_file']}")
    else:
        say(f"config file: none at {desc['config_path']} (create it, or point LAP_CONFIG_FILE at another)")
    say(f"data dir:    {desc['data_dir']}")
    kube = desc.get("kubernetes") or {}
    if kube.get("backend") == "kubernetes":
        say(f"sandboxes:   kubernetes, context {kube['context']} ({kube['kubeconfig']}), "
            f"team {kube['team']} -> namespace {kube['namespace']}")
    else:
        say("sandboxes:   local (bubblewrap); set kube_context or LAP_KUBE_CONTEXT for Kubernetes")
    if desc["keys"]:
        say("key bindings: " + ", ".join(f"{k}={v}" for k, v in desc["keys"].items()))
    return 0
