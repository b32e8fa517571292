"""`lap-tui teams [list]|create`: teams and their Kubernetes namespaces.

A team is a name agents carry (no table of its own): the list is the store's agents' teams,
the config's `team` and the teams of the `kube_namespaces` map. Each maps to a namespace
(namespace_for: the map, else `kube_namespace_prefix` + team). `create` makes the namespace,
the shipped NetworkPolicy that lets its sandbox pods reach only the relay (and DNS), and, with
--apply-rbac, the shipped Role and RoleBinding (all from deploy/k8s/team-default.yaml).
Creating them takes the caller's own rights (an admin's); the workers' Role has none of them.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

from lap_tui.cli.common import add_json_flag, emit_json, emit_json_lines, opened_store, print_table
from lap_tui.config import Settings, load_settings
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.names import validate_label

TEAM_MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "team-default.yaml"
MANAGED_BY, TEAM_LABEL = "app.kubernetes.io/managed-by", "lap-tui.dev/team"
NS_NAME_LABEL = "kubernetes.io/metadata.name"  # the API server sets it on every namespace
# http://<service>.<namespace>.svc[.<cluster domain>][:port]: a Service's in-cluster address
_SERVICE_URL = re.compile(r"^https?://[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.[a-z0-9.-]+)?(:[0-9]+)?/?$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teams", help="list teams with their namespace; create a team's namespace")
    add_json_flag(p)
    p.set_defaults(handler=list_)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="teams (from agents and the config) and their namespaces")
    # SUPPRESS: `teams --json list` keeps the flag given before the verb (a default would reset it).
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON lines, one per team")
    ls.set_defaults(handler=list_)
    c = verbs.add_parser("create", help="create a team's namespace in the cluster")
    c.add_argument("name", help="the team (a DNS-1123 label)")
    c.add_argument("--apply-rbac", action="store_true",
                   help="also the Role and RoleBinding of deploy/k8s/team-default.yaml, in that namespace")
    c.add_argument("--service-account", metavar="NAMESPACE:NAME",
                   help="bind the Role to this ServiceAccount (default: the shipped worker, lap-tui:lap-tui-worker); "
                        "a worker per team, bound only in its team's namespace, keeps teams apart by credentials")
    c.add_argument("--no-network-policy", action="store_true",
                   help="skip the NetworkPolicy that lets the team's sandbox pods reach only the relay (and DNS)")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    c.set_defaults(handler=create)


def _namespace(settings: Settings, team: str) -> str:
    from lap_tui.sandbox.k8s.backend import namespace_for

    return namespace_for(settings, team)


async def teams(settings: Settings, store: Any) -> list[dict[str, Any]]:
    """Every team lap-tui knows of, with its namespace, agent and session counts, and where
    it was found (agents, config, namespace map)."""
    from lap_tui.sandbox.k8s.backend import parse_namespace_map

    found: dict[str, dict[str, Any]] = {}

    def team(name: str, source: str) -> dict[str, Any]:
        row = found.setdefault(name, {"team": name, "namespace": _namespace(settings, name), "agents": 0,
                                      "sessions": 0, "from": []})
        if source not in row["from"]:
            row["from"].append(source)
        return row

    for agent in await store.list_agents(limit=100_000):
        row = team(agent.team, "agents")
        row["agents"] += 1
        row["sessions"] += await store.count_sessions(agent.id)
    team(settings["team"], "config")
    for name in parse_namespace_map(_get(settings, "kube_namespaces")):
        team(validate_label("team", name), "kube_namespaces")
    return [found[k] for k in sorted(found)]


def _get(settings: Settings, key: str) -> Any:
    try:
        return settings[key]
    except KeyError:
        return ""


async def list_(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with opened_store(settings) as store:
        rows = await teams(settings, store)
    if args.json:
        emit_json_lines(rows)
    else:
        print_table(("TEAM", "NAMESPACE", "AGENTS", "SESSIONS", "FROM"),
                    ((r["team"], r["namespace"], r["agents"], r["sessions"], ", ".join(r["from"])) for r in rows))
    return 0


def team_rbac(namespace: str, manifest: Path = TEAM_MANIFEST, service_account: str = "") -> list[dict[str, Any]]:
    """The shipped team Role and RoleBinding, moved to `namespace`; the binding's subject is the
    shipped worker's ServiceAccount unless `service_account` ("namespace:name") says another."""
    subject = None
    if service_account:
        sa_ns, sep, sa_name = service_account.partition(":")
        if not sep:
            raise InvalidInput(f"--service-account {service_account!r} is not NAMESPACE:NAME",
                               "e.g. --service-account lap-tui:lap-tui-worker")
        subject = {"kind": "ServiceAccount", "name": validate_label("service account", sa_name),
                   "namespace": validate_label("namespace", sa_ns)}

    out = []
    for doc in _team_docs(manifest, ("Role", "RoleBinding")):
        doc["metadata"]["namespace"] = namespace
        if subject is not None and doc["kind"] == "RoleBinding":
            doc["subjects"] = [subject]
        out.append(doc)
    if {d["kind"] for d in out} != {"Role", "RoleBinding"}:
        raise InvalidInput(f"{manifest} holds no Role and RoleBinding", "restore it from lap-tui's source")
    return out


def _team_docs(manifest: Path, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    import yaml  # installed with kubernetes

    if not manifest.is_file():
        raise NotFound(f"the team manifest {manifest} is not here (an installed lap-tui ships no deploy/)",
                       "apply deploy/k8s/team-default.yaml from lap-tui's source, with your namespace")
    return [copy.deepcopy(d) for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") in kinds]


def relay_namespace(relay_url: str) -> str | None:
    """The namespace of the relay's Service when `relay_url` is its in-cluster address."""
    m = _SERVICE_URL.match(relay_url.strip())
    return m.group(1) if m else None


def team_network_policy(namespace: str, manifest: Path = TEAM_MANIFEST, relay_url: str = "") -> dict[str, Any]:
    """The shipped sandboxes' egress policy, moved to `namespace`; its relay peer names the
    namespace of `relay_url`'s Service (LAP_RELAY_URL) when that is one, else the shipped one."""
    docs = _team_docs(manifest, ("NetworkPolicy",))
    if len(docs) != 1:
        raise InvalidInput(f"{manifest} holds no NetworkPolicy", "restore it from lap-tui's source")
    doc = docs[0]
    doc["metadata"]["namespace"] = namespace
    relay_ns = relay_namespace(relay_url)
    for rule in doc["spec"].get("egress", ()):
        for peer in rule.get("to", ()):
            sel = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if relay_ns and pods.get("app.kubernetes.io/component") == "relay" and NS_NAME_LABEL in sel:
                sel[NS_NAME_LABEL] = relay_ns
    return doc


async def create(args: argparse.Namespace) -> int:
    from lap_tui.sandbox.k8s import KubernetesBackend

    settings = load_settings()
    name = validate_label("team", args.name)
    ns = _namespace(settings, name)
    if args.service_account and not args.apply_rbac:
        raise InvalidInput("--service-account names whom the Role is bound to", "add --apply-rbac")
    rbac = team_rbac(ns, service_account=args.service_account or "") if args.apply_rbac else []
    docs, skipped = list(rbac), ""
    if not args.no_network_policy:
        try:
            docs.insert(0, team_network_policy(ns, relay_url=str(_get(settings, "relay_url"))))
        except NotFound as exc:  # an installed lap-tui without deploy/: the namespace alone, said so
            skipped = f"NetworkPolicy not created: {exc}"
    async with opened_store(settings) as store:
        backend = KubernetesBackend(store, settings)
        try:
            apis = await backend.apis()
            done = {"team": name, "namespace": ns,
                    "namespace_created": await _create_namespace(backend, apis, ns, name), "rbac": []}
            if not args.no_network_policy:
                done["network_policy"] = skipped
            for doc in docs:
                line = f"{doc['kind']}/{doc['metadata']['name']} " + await _apply(backend, apis, doc)
                if doc["kind"] == "NetworkPolicy":
                    done["network_policy"] = line
                else:
                    done["rbac"].append(line)
        finally:
            await backend.close()
    if args.json:
        emit_json(done)
    else:
        print(f"team {name}: namespace {ns} {'created' if done['namespace_created'] else 'already there'}"
              + "".join(f"; {r}" for r in [done.get("network_policy", ""), *done["rbac"]] if r))
    return 0


async def _create_namespace(backend: Any, apis: Any, ns: str, team: str) -> bool:
    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {MANAGED_BY: "lap-tui", TEAM_LABEL: team}}}
    try:
        await apis.core.create_namespace(body, field_validation="Strict")
        return True
    except apis.client.ApiException as exc:
        if exc.status == 409:
            return False
        raise backend.api_failed(f"cannot create namespace {ns}", exc) from None


async def _apply(backend: Any, apis: Any, doc: dict[str, Any]) -> str:
    """Create `doc` in its namespace, or replace it when it exists: "created" / "updated"."""
    kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]
    if kind == "NetworkPolicy":
        api = apis.client.NetworkingV1Api(apis.api)
        create, replace = api.create_namespaced_network_policy, api.replace_namespaced_network_policy
    else:
        api = apis.client.RbacAuthorizationV1Api(apis.api)
        create = api.create_namespaced_role if kind == "Role" else api.create_namespaced_role_binding
        replace = api.replace_namespaced_role if kind == "Role" else api.replace_namespaced_role_binding
    try:
        await create(ns, doc, field_validation="Strict")
        return "created"
    except apis.client.ApiException as exc:
        if exc.status != 409:
            raise backend.api_failed(f"cannot create {kind} {name} in {ns}", exc) from None
    try:
        await replace(name, ns, doc, field_validation="Strict")
        return "updated"
    except apis.client.ApiException as exc:
        raise backend.api_failed(f"cannot update {kind} {name} in {ns}", exc) from None
