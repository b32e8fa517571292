"""Teams as namespaces on the real control plane: `lap-tui teams list|create` (the real command in
a subprocess), and two teams whose sandboxes live in separate namespaces, each team's backend
running with its own ServiceAccount bound (by `teams create --apply-rbac`) only in its own
namespace: neither lists, execs into, or reads the Secrets of the other's."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.sandbox.k8s import KubernetesBackend, objects
from lap_tui.store import open_store
from tests.conftest import run_cli
from tests.k8s.lap_backend import k8s_env, k8s_settings
from tests.platform.manifests import kubectl_as, token_kubeconfig


def _cli(env: dict[str, str], *args: str) -> str:
    r = run_cli(*args, env=env, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def refused(r) -> bool:
    return r.returncode != 0 and "forbidden" in r.stderr.lower()


async def test_two_teams_live_in_their_own_namespaces_and_neither_reaches_the_other(k8s_cluster, tmp_path: Path):
    tag = uuid.uuid4().hex[:8]
    ns = {"alpha": f"t-{tag}-alpha", "beta": f"t-{tag}-beta"}
    sa_ns = f"t-{tag}-sys"
    env = k8s_env(tmp_path, k8s_cluster, "unused", LAP_KUBE_NAMESPACES=f"alpha={ns['alpha']},beta={ns['beta']}")
    try:
        k8s_cluster.kubectl("create", "namespace", sa_ns, check=True)
        for team in ns:
            k8s_cluster.kubectl("create", "serviceaccount", f"{team}-worker", "-n", sa_ns, check=True)
            out = json.loads(_cli(env, "teams", "create", team, "--apply-rbac", "--service-account",
                                  f"{sa_ns}:{team}-worker", "--json"))
            assert out["namespace"] == ns[team] and out["namespace_created"] is True
            assert out["rbac"] == ["Role/lap-tui-sandboxes created", "RoleBinding/lap-tui-worker created"]
            binding = json.loads(k8s_cluster.kubectl("get", "rolebinding", "lap-tui-worker", "-n", ns[team], "-o",
                                                     "json", check=True).stdout)
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{team}-worker", "namespace": sa_ns}]
        again = json.loads(_cli(env, "teams", "create", "alpha", "--apply-rbac", "--service-account",
                                f"{sa_ns}:alpha-worker", "--json"))
        assert again["namespace_created"] is False and again["rbac"][0].endswith("updated")

        # `teams list`: from the config (team default), the namespace map, and the agents.
        _cli(env, "agents", "create", "bot", "--team", "beta", "--model", "m", "--sandbox-backend", "kubernetes")
        rows = {r["team"]: r for r in map(json.loads, _cli(env, "teams", "--json").splitlines())}
        assert set(rows) == {"alpha", "beta", "default"}
        assert rows["beta"]["namespace"] == ns["beta"] and rows["beta"]["agents"] == 1
        assert rows["alpha"]["namespace"] == ns["alpha"] and rows["alpha"]["from"] == ["kube_namespaces"]
        assert rows["default"]["namespace"] == "lap-default" and rows["default"]["from"] == ["config"]
        assert _cli(env, "teams", "list").splitlines()[0].split() == ["TEAM", "NAMESPACE", "AGENTS", "SESSIONS",
                                                                       "FROM"]

        # Each team's backend with its own worker's credentials and a store of its own team.
        backends, stores, sids = {}, [], {}
        for team in ns:
            kc = token_kubeconfig(k8s_cluster, sa_ns, f"{team}-worker", tmp_path / f"{team}.kubeconfig")
            tenv = {**env, "LAP_KUBECONFIG": str(kc), "LAP_KUBE_CONTEXT": "sa", "LAP_TEAM": team,
                    "XDG_DATA_HOME": str(tmp_path / f"data-{team}")}
            store = await open_store(f"sqlite://{tmp_path / f'{team}.db'}")
            stores.append(store)
            b = backends[team] = KubernetesBackend(store, k8s_settings(tenv, tmp_path), environ=tenv,
                                                   ready_timeout=120)
            sids[team] = f"s-{team}{tag}"[:14]
            st = await b.ensure(SandboxSpec(id=sids[team], team=team, settings=SandboxSettings()))
            assert st.ready
            assert k8s_cluster.kubectl("get", "sandbox", "-n", ns[team], sids[team]).returncode == 0
        for team, other in (("alpha", "beta"), ("beta", "alpha")):
            assert [s.id for s in await backends[team].list()] == [sids[team]]
            kc = tmp_path / f"{team}.kubeconfig"
            for args in (["get", "sandboxes.agents.x-k8s.io", "-n", ns[other]],
                         ["get", "pods", "-n", ns[other]],
                         ["exec", "-n", ns[other], sids[other], "--", "true"],
                         ["get", "secret", objects.secret_name(sids[other]), "-n", ns[other]],
                         ["delete", "sandbox", sids[other], "-n", ns[other]]):
                r = kubectl_as(k8s_cluster, kc, *args)
                assert refused(r), (team, args, r.stdout, r.stderr)
            assert (await backends[team].exec(sids[team], ["echo", team])).stdout == f"{team}\n".encode()
        for b in backends.values():
            await b.close()
        for s in stores:
            await s.close()
    finally:
        for name in (*ns.values(), sa_ns):
            k8s_cluster.kubectl("delete", "namespace", name, "--wait=false")
