"""Warm starts (issue 13): a new session -> its first command's output, from an agent's warm pool
(a SandboxClaim on a ready pooled Sandbox) vs a cold Sandbox, side by side in one run, with the
raw-client floor (create a Sandbox, watch its pod Ready, exec). Prints; asserts nothing.
Needs the bin/k8s-dev cluster running.

    .venv/bin/python -m tests.benchmarks.bench_k8s_warm [--rounds 8] [--pool 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.domain.session import Session
from lap_tui.sandbox import ensure_for_session
from lap_tui.sandbox.k8s import KubernetesBackend, objects, warm
from lap_tui.store import open_store
from tests.benchmarks.bench_k8s import ms, raw_clients, raw_ready
from tests.support import k8s_cluster as k8s


async def pool_ready(custom, ns: str, pool: str, size: int) -> None:
    """Until the pool reports `size` ready sandboxes (from a watch of the pool object)."""
    from kubernetes.aio import watch

    while True:
        w = watch.Watch()
        async with w:
            async for ev in w.stream(custom.list_namespaced_custom_object, warm.GROUP, "v1beta1", ns, warm.POOLS,
                                     field_selector=f"metadata.name={pool}", timeout_seconds=60):
                if int((ev["raw_object"].get("status") or {}).get("readyReplicas") or 0) >= size:
                    return


async def first_output(b: KubernetesBackend, store, agent: Agent) -> tuple[float, float, str]:
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    t0 = time.perf_counter()
    st = await ensure_for_session(b, store, agent, session)
    t_ready = time.perf_counter()
    res = await b.exec(st.id, ["echo", "hi"])
    assert res.stdout == b"hi\n", res
    return t_ready - t0, time.perf_counter() - t0, st.id


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--pool", type=int, default=2)
    args = ap.parse_args()
    if not k8s.is_running():
        sys.exit("the bin/k8s-dev cluster is not running: bin/k8s-dev up")
    cluster = k8s.K8sCluster(k8s.state_dir())
    ns = "bench-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-k8s-warm-"))
    env = {"XDG_DATA_HOME": str(tmp / "d"), "XDG_CONFIG_HOME": str(tmp / "c"), "XDG_STATE_HOME": str(tmp / "s"),
           "HOME": str(tmp), "LAP_KUBECONFIG": str(cluster.kubeconfig), "LAP_KUBE_CONTEXT": cluster.context,
           "LAP_KUBE_NAMESPACES": f"bench={ns}"}
    store = await open_store(f"sqlite://{tmp / 'lap.db'}")
    b = KubernetesBackend(store, load_settings(env, cwd=tmp), environ=env)
    client, api, ws = await raw_clients(cluster)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(ws)
    version = await b.version()
    cold = await store.create_agent(Agent(id=new_id(), name="cold", team="bench", model="m",
                                          sandbox=SandboxSettings(backend="kubernetes")))
    hot = await store.create_agent(Agent(id=new_id(), name="warm", team="bench", model="m",
                                         sandbox=SandboxSettings(backend="kubernetes", warm_pool=args.pool)))
    rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "raw": []}
    try:
        print(f"cluster {cluster.context}, agent-sandbox {version}, namespace {ns}, pool {args.pool}, "
              f"{args.rounds} rounds")
        await warm.sync(b, hot.id, hot.team, hot.sandbox)
        for i in range(args.rounds):
            await pool_ready(custom, ns, warm.pool_name(hot.id), args.pool)  # a warm start, not a cold claim
            ready, out, sid = await first_output(b, store, hot)
            assert sid.startswith(warm.pool_name(hot.id) + "-"), f"round {i}: the claim got a cold sandbox {sid}"
            rows["warm"].append((ready, out))
            rows["cold"].append((await first_output(b, store, cold))[:2])
            name = f"s-benchraw{i:03d}"
            spec_body = objects.sandbox_object(SandboxSpec(id=name, team="bench"), namespace=ns, version=version, image="python:3.12-slim", plain_env={}, has_secret=False)
            t0 = time.perf_counter()
            await custom.create_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, spec_body)
            await raw_ready(client, api, ns, name)
            t_ready = time.perf_counter()
            await core.connect_get_namespaced_pod_exec(name, ns, command=["echo", "hi"], stdout=True, stderr=True)
            rows["raw"].append((t_ready - t0, time.perf_counter() - t0))
        print(f"{'new session ->':<34}{'ready (median)':>16}{'first output (median)':>24}{'first output (max)':>20}")
        for label, key in (("warm pool (claim)", "warm"), ("cold Sandbox", "cold"),
                           ("raw client, cold (create+watch+exec)", "raw")):
            r = rows[key]
            print(f"{label:<34}{ms(statistics.median(x for x, _ in r)):>16}"
                  f"{ms(statistics.median(y for _, y in r)):>24}{ms(max(y for _, y in r)):>20}")
    finally:
        await warm.remove(b, hot.id, hot.team)
        await b.close()
        await api.close()
        await ws.close()
        await store.close()
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


if __name__ == "__main__":
    asyncio.run(main())
