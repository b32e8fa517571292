"""Least privilege, enforced by the real API server: the Kubernetes backend runs its whole
sandbox lifecycle with nothing but the shipped ServiceAccount's token and Role
(deploy/k8s/team-default.yaml), as a worker in the cluster would; what it must not do is
refused. The backend calling a verb the Role lacks fails this test with a 403."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxPhase, SandboxSpec
from lap_tui.sandbox.k8s import KubernetesBackend, objects, warm
from lap_tui.store import open_store
from tests.platform.manifests import (SYSTEM_NS, TEAM_NS, apply, delete_namespaces, find, kubectl_as, render,
                                      token_kubeconfig, unique_names)
from tests.support.waiting import until

TEAM = "team1"
SECRET = "sv-rbac-secret-2211"


def refused(r) -> bool:
    return r.returncode != 0 and "forbidden" in r.stderr.lower()


async def test_the_backend_needs_only_the_shipped_role(k8s_cluster, tmp_path: Path):
    names = unique_names()
    sys_ns, team_ns = names[SYSTEM_NS], names[TEAM_NS]
    other_ns = team_ns.replace("-team", "-other")
    objs = render(k8s_cluster, names)
    # Another team: the same team manifest in its own namespace, bound to its own worker.
    other = [o for o in render(k8s_cluster, {**names, TEAM_NS: other_ns})
             if o["kind"] in ("Role", "RoleBinding") or (o["kind"] == "Namespace" and o["metadata"]["name"] == other_ns)]
    find(other, "RoleBinding")["subjects"][0]["name"] = "other-team-worker"
    all_names = {**names, "other": other_ns}
    try:
        assert apply(k8s_cluster, objs + other).returncode == 0
        k8s_cluster.kubectl("create", "serviceaccount", "other-team-worker", "-n", sys_ns, check=True)
        k8s_cluster.kubectl("create", "secret", "generic", "their-key", "-n", other_ns,
                            "--from-literal=token=not-yours", check=True)
        k8s_cluster.kubectl("run", "their-pod", "-n", other_ns, "--image=busybox", "--restart=Never",
                            "--command", "--", "sleep", "infinity", check=True)
        kc = token_kubeconfig(k8s_cluster, sys_ns, "lap-tui-worker", tmp_path / "sa.kubeconfig")

        # Refused by the API server: beyond the Role, and anything in the other team's namespace.
        for args in (["delete", "namespace", team_ns, "--wait=false"],
                     ["get", "secret", "their-key", "-n", other_ns],
                     ["get", "pods", "-n", other_ns],
                     ["get", "sandboxes.agents.x-k8s.io", "-n", other_ns],
                     ["exec", "-n", other_ns, "their-pod", "--", "true"],
                     ["get", "secrets", "-n", team_ns],  # it writes its Secrets, never reads any back
                     ["get", "pods", "--all-namespaces"],
                     ["run", "own-pod", "-n", team_ns, "--image=busybox", "--restart=Never"],
                     ["create", "rolebinding", "escalate", "-n", team_ns, "--clusterrole=admin",
                      "--serviceaccount", f"{sys_ns}:lap-tui-worker"],
                     # the sandboxes' egress policy is the admin's (teams create, the manifest)
                     ["delete", "networkpolicy", find(objs, "NetworkPolicy")["metadata"]["name"], "-n", team_ns],
                     ["get", "networkpolicies", "-n", team_ns]):
            r = kubectl_as(k8s_cluster, kc, *args)
            assert refused(r), (args, r.stdout, r.stderr)
        assert kubectl_as(k8s_cluster, kc, "auth", "can-i", "create", "pods/exec", "-n", other_ns).stdout.strip() == "no"

        # Everything the backend does, with the ServiceAccount's credentials only.
        env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
               "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path),
               "LAP_KUBECONFIG": str(kc), "LAP_KUBE_CONTEXT": "sa", "LAP_KUBE_NAMESPACES": f"{TEAM}={team_ns}", "LAP_TEAM": TEAM,
               "CONTAINER_ENV_RBAC_SECRET": SECRET}
        store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
        b = KubernetesBackend(store, load_settings(env, cwd=tmp_path), environ=env, ready_timeout=120)
        seen = []

        async def watching():
            async for ev in b.watch():
                seen.append(ev)

        watcher = asyncio.create_task(watching())
        try:
            sid = "s-rbacsa00001"
            spec = SandboxSpec(id=sid, team=TEAM, settings=SandboxSettings())
            st = await b.ensure(spec)  # namespace create refused (403) and tolerated; Secret, Sandbox
            assert st.ready and st.phase is SandboxPhase.RUNNING
            r = await b.exec(sid, ["sh", "-c", 'echo "out $RBAC_SECRET"; exit 3'])
            assert r.exit_code == 3 and r.stdout == f"out {SECRET}\n".encode()
            r = await b.exec(sid, ["sh", "-c", "sleep 300"], timeout=1.0)  # the kill goes through exec too
            assert r.timed_out
            await b.write_file(sid, "dir/a.txt", b"written by the service account\n")
            assert await b.read_file(sid, "dir/a.txt") == b"written by the service account\n"
            assert [e.name for e in await b.list_dir(sid, "dir")] == ["a.txt"]
            k8s_cluster.append_log(team_ns, sid, "a line from the container")
            assert "a line from the container" in await b.logs(sid, tail=5)
            from lap_tui.sandbox.k8s.describe import describe  # the app's d: Events need list on events
            assert not any("not readable" in line for line in (await describe(b, sid))["events"])
            assert [s.id for s in await b.list()] == [sid]  # cluster-wide list refused: the team namespaces
            await until(lambda: any(e.status.id == sid and e.status.ready for e in seen), "the watch to show it")
            assert (await b.suspend(sid)).phase is SandboxPhase.SUSPENDED
            assert (await b.resume(sid)).ready
            assert (await b.ensure(spec)).ready  # again: the Secret exists, it is replaced
            await b.delete(sid)
            await until(lambda: k8s_cluster.kubectl("get", "pvc", "-n", team_ns, objects.pvc_name(sid))
                        .returncode != 0, "the PVC to go")
            await until(lambda: k8s_cluster.kubectl("get", "secret", "-n", team_ns, objects.secret_name(sid))
                        .returncode != 0, "the Secret to go")
            # Warm starts (k8s/warm.py): the agent's template and pool, a claim, its sandbox, removal.
            agent_id = "0123456789abcdef0123456789abcdef"
            warm_settings = SandboxSettings(warm_pool=1)
            await warm.sync(b, agent_id, TEAM, warm_settings)
            await warm.sync(b, agent_id, TEAM, replace(warm_settings, memory="768Mi"))  # an edit: update
            wspec = SandboxSpec(id="s-rbacwarm001", team=TEAM, settings=warm_settings, agent_id=agent_id)
            wst = await b.ensure(wspec)  # through a claim (its sandbox from the pool, or made for it)
            assert wst.ready
            assert k8s_cluster.kubectl("get", "sandboxclaims.extensions.agents.x-k8s.io", "-n", team_ns,
                                       wspec.id).returncode == 0
            assert (await b.exec(wst.id, ["sh", "-c", "echo warm"])).stdout == b"warm\n"
            await b.delete(wst.id)
            assert await warm.remove(b, agent_id, TEAM) == []  # the claim went with its sandbox
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await b.close()
            await store.close()
    finally:
        delete_namespaces(k8s_cluster, all_names)
