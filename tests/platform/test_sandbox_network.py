"""The sandboxes' NetworkPolicy (deploy/k8s/team-default.yaml, and `lap-tui teams create`) as the
real API server sees it. kwok enforces no NetworkPolicy, so what is checked is what the API server
can check: the policy applies strictly; its pod selector selects the pods the backend really
makes (a Sandbox's, a warm pool's) and no other pod; its only peers select the relay
Deployment's pods (not the workers') on the relay's port, and DNS; the workers' ServiceAccount
can neither change nor delete it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from lap_tui.cli.teams import team_network_policy
from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.sandbox.k8s import KubernetesBackend, warm
from lap_tui.store import open_store
from tests.conftest import run_cli
from tests.k8s.lap_backend import k8s_env, k8s_settings
from tests.platform.manifests import (NS_NAME_LABEL, SYSTEM_NS, TEAM_NS, apply, delete_namespaces, find, kubectl_as,
                                      render, token_kubeconfig, unique_names)
from tests.support.waiting import until

TEAM = "team1"


def selector(sel: dict[str, Any]) -> str:
    """A LabelSelector as kubectl's -l string (the API server does the matching)."""
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or ():
        op, key, values = e["operator"], e["key"], e.get("values") or []
        parts.append({"Exists": key, "DoesNotExist": f"!{key}", "In": f"{key} in ({','.join(values)})",
                      "NotIn": f"{key} notin ({','.join(values)})"}[op])
    assert parts, "an empty selector selects every pod"
    return ",".join(parts)


def pods(cluster, namespace: str, sel: str = "") -> dict[str, dict[str, str]]:
    args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", sel] if sel else [])
    items = json.loads(cluster.kubectl(*args, check=True).stdout)["items"]
    return {p["metadata"]["name"]: p["metadata"].get("labels") or {} for p in items}


def refused(r) -> bool:
    return r.returncode != 0 and "forbidden" in r.stderr.lower()


async def test_the_policy_selects_the_backends_sandbox_pods_and_lets_them_reach_only_the_relay(k8s_cluster,
                                                                                               tmp_path: Path):
    names = unique_names()
    sys_ns, team_ns = names[SYSTEM_NS], names[TEAM_NS]
    objs = render(k8s_cluster, names)
    try:
        assert apply(k8s_cluster, objs).returncode == 0
        policy = find(objs, "NetworkPolicy")
        assert policy["metadata"]["namespace"] == team_ns
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec
        # Admitted as written (strict apply above); read back unchanged.
        live = json.loads(k8s_cluster.kubectl("get", "networkpolicy", policy["metadata"]["name"], "-n", team_ns,
                                              "-o", "json", check=True).stdout)
        assert live["spec"]["podSelector"] == spec["podSelector"] and live["spec"]["egress"] == spec["egress"]

        # Sandboxes made by the backend (worker identity): a session's, and a warm pool's.
        kc = token_kubeconfig(k8s_cluster, sys_ns, "lap-tui-worker", tmp_path / "sa.kubeconfig")
        env = {**k8s_env(tmp_path, k8s_cluster, team_ns), "LAP_KUBECONFIG": str(kc), "LAP_KUBE_CONTEXT": "sa",
               "LAP_TEAM": TEAM}
        store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
        b = KubernetesBackend(store, k8s_settings(env, tmp_path), environ=env, ready_timeout=120)
        agent_id = uuid.uuid4().hex
        try:
            st = await b.ensure(SandboxSpec(id="s-netpol00001", team=TEAM, settings=SandboxSettings(),
                                            agent_id=agent_id, session_id=uuid.uuid4().hex))
            assert st.ready
            await warm.sync(b, agent_id, TEAM, SandboxSettings(warm_pool=1))
            k8s_cluster.kubectl("run", "not-a-sandbox", "-n", team_ns, "--image=busybox", "--restart=Never",
                                "--labels=app=other", "--command", "--", "sleep", "infinity", check=True)
            await until(lambda: any(n.startswith(warm.pool_name(agent_id) + "-") for n in pods(k8s_cluster, team_ns))
                        and "not-a-sandbox" in pods(k8s_cluster, team_ns), "the pool's pod and the other one",
                        timeout=120)
            every = pods(k8s_cluster, team_ns)
            chosen = pods(k8s_cluster, team_ns, selector(spec["podSelector"]))
            # Every pod of the namespace but the stranger: the session's sandbox and the pool's.
            assert set(chosen) == set(every) - {"not-a-sandbox"}, every
            assert "s-netpol00001" in chosen, every
            assert any(n.startswith(warm.pool_name(agent_id) + "-") for n in chosen), every
            assert all(labels.get("lap-tui.dev/team") == TEAM for labels in chosen.values())
        finally:
            await warm.remove(b, agent_id, TEAM)
            await b.close()
            await store.close()

        # The peers: the relay's pods on the relay's port, and the cluster DNS; nothing else.
        relay = find(objs, "Deployment", "lap-tui-relay")
        worker = find(objs, "Deployment", "lap-tui-worker")
        port = relay["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        (to_relay, to_dns) = spec["egress"]
        (peer,) = to_relay["to"]
        assert to_relay["ports"] == [{"protocol": "TCP", "port": port}]
        assert peer["namespaceSelector"] == {"matchLabels": {NS_NAME_LABEL: sys_ns}}
        ns_chosen = json.loads(k8s_cluster.kubectl("get", "namespaces", "-l", selector(peer["namespaceSelector"]),
                                                   "-o", "json", check=True).stdout)["items"]
        assert [n["metadata"]["name"] for n in ns_chosen] == [sys_ns]
        for d in (relay, worker):
            r = k8s_cluster.kubectl("rollout", "status", f"deployment/{d['metadata']['name']}", "-n", sys_ns,
                                    "--timeout=120s", timeout=180)
            assert r.returncode == 0, r.stderr
        in_sys = pods(k8s_cluster, sys_ns)
        relay_pods = {n for n in in_sys if n.startswith("lap-tui-relay-")}
        assert len(relay_pods) == relay["spec"]["replicas"] and len(in_sys) > len(relay_pods)  # workers too
        assert set(pods(k8s_cluster, sys_ns, selector(peer["podSelector"]))) == relay_pods
        (dns,) = to_dns["to"]
        assert dns == {"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: "kube-system"}},
                       "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
        assert sorted((p["protocol"], p["port"]) for p in to_dns["ports"]) == [("TCP", 53), ("UDP", 53)]

        # The workers run with the team's Role: the policy is out of their reach.
        for args in (["delete", "networkpolicy", policy["metadata"]["name"], "-n", team_ns],
                     ["patch", "networkpolicy", policy["metadata"]["name"], "-n", team_ns, "--type=merge",
                      "-p", '{"spec":{"egress":[{}]}}']):
            r = kubectl_as(k8s_cluster, kc, *args)
            assert refused(r), (args, r.stdout, r.stderr)
    finally:
        delete_namespaces(k8s_cluster, names)


def test_teams_create_makes_the_policy_pointing_at_the_relays_namespace(k8s_cluster, tmp_path: Path):
    tag = uuid.uuid4().hex[:8]
    team_ns, sys_ns, bare_ns = f"t-{tag}-gamma", f"t-{tag}-sys", f"t-{tag}-bare"
    env = k8s_env(tmp_path, k8s_cluster, "unused", LAP_KUBE_NAMESPACES=f"gamma={team_ns},bare={bare_ns}",
                  LAP_RELAY_URL=f"http://lap-tui-relay.{sys_ns}.svc:4141")
    try:
        r = run_cli("teams", "create", "gamma", "--json", env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["network_policy"] == "NetworkPolicy/lap-tui-sandboxes-egress created" and out["rbac"] == []
        live = json.loads(k8s_cluster.kubectl("get", "networkpolicy", "lap-tui-sandboxes-egress", "-n", team_ns,
                                              "-o", "json", check=True).stdout)
        want = team_network_policy(team_ns, relay_url=env["LAP_RELAY_URL"])
        assert live["spec"] == want["spec"]
        assert live["spec"]["egress"][0]["to"][0]["namespaceSelector"] == {"matchLabels": {NS_NAME_LABEL: sys_ns}}
        again = json.loads(run_cli("teams", "create", "gamma", "--json", env=env, timeout=120).stdout)
        assert again["network_policy"].endswith(" updated") and again["namespace_created"] is False
        r = run_cli("teams", "create", "bare", "--no-network-policy", "--json", env=env, timeout=120)
        assert r.returncode == 0 and "network_policy" not in json.loads(r.stdout), r.stderr
        assert json.loads(k8s_cluster.kubectl("get", "networkpolicies", "-n", bare_ns, "-o", "json",
                                              check=True).stdout)["items"] == []
    finally:
        for ns in (team_ns, bare_ns):
            k8s_cluster.kubectl("delete", "namespace", ns, "--wait=false")


async def test_an_agent_with_network_is_not_confined_by_the_policy(k8s_cluster, k8s_namespace, tmp_path: Path):
    """`sandbox.network = true` lifts the policy: its pods (a session's, a warm pool's) carry
    lap-tui.dev/network=open and the policy's selector, as the API server matches it, leaves them
    out while it still selects a confined sandbox's pod."""
    ns = k8s_namespace
    policy = team_network_policy(ns)
    r = k8s_cluster.kubectl("apply", "--server-side", "--field-manager=lap-tui-test", "--validate=strict", "-f", "-",
                            input=json.dumps(policy))
    assert r.returncode == 0, r.stderr
    live = json.loads(k8s_cluster.kubectl("get", "networkpolicy", policy["metadata"]["name"], "-n", ns, "-o", "json",
                                          check=True).stdout)
    env = k8s_env(tmp_path, k8s_cluster, ns)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    b = KubernetesBackend(store, k8s_settings(env, tmp_path), environ=env, ready_timeout=120)
    open_agent = uuid.uuid4().hex
    try:
        for sid, net in (("s-confined0001", False), ("s-opennet00001", True)):
            st = await b.ensure(SandboxSpec(id=sid, team=TEAM, settings=SandboxSettings(network=net),
                                            agent_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex))
            assert st.ready
        await warm.sync(b, open_agent, TEAM, SandboxSettings(warm_pool=1, network=True))
        pooled = warm.pool_name(open_agent) + "-"
        await until(lambda: any(n.startswith(pooled) for n in pods(k8s_cluster, ns)), "the pool's pod", timeout=120)
        every = pods(k8s_cluster, ns)
        chosen = pods(k8s_cluster, ns, selector(live["spec"]["podSelector"]))
        assert set(chosen) == {"s-confined0001"}, every
        assert every["s-opennet00001"].get("lap-tui.dev/network") == "open"
        assert all(labels.get("lap-tui.dev/team") == TEAM for labels in every.values())
    finally:
        await warm.remove(b, open_agent, TEAM)
        await b.close()
        await store.close()
