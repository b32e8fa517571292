"""Kubernetes sandbox figures (issue 11), beside raw `kubernetes` client calls in the same run.
Prints them; asserts nothing (machines are noisy). Needs the bin/k8s-dev cluster running.

    .venv/bin/python -m tests.benchmarks.bench_k8s [--n 30] [--many 1000] [--rate 100] [--seconds 10]

- first ensure -> Ready -> first command output (lap-tui) vs create + watch Ready + exec (raw)
- exec round trip, p50/p90 (lap-tui: wrapper, pod watch, store touch) vs a raw exec
- suspend -> resume -> first command output
- watch latency: a change made through the API -> its event out of watch() (lap-tui) vs a raw
  watch on the same objects
- MANY Sandboxes listed and watched while RATE changes/s hit them: initial sync time, latency of
  probe changes under that load, and the process's memory (RSS) before/after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxPhase, SandboxSpec
from lap_tui.sandbox.k8s import KubernetesBackend, objects
from lap_tui.store import open_store
from tests.support import k8s_cluster as k8s


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def raw_clients(cluster: k8s.K8sCluster):
    from kubernetes.aio import client, config
    from kubernetes.aio.stream import WsApiClient

    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), context=cluster.context,
                                  client_configuration=cfg, persist_config=False)
    api = client.ApiClient(cfg)
    ws = WsApiClient(configuration=cfg)
    return client, api, ws


async def raw_ready(client, api, ns: str, name: str) -> None:
    """Watch the pod until Ready (the raw way: the client's Watch helper)."""
    from kubernetes.aio import watch

    w = watch.Watch()
    async with w:
        async for ev in w.stream(client.CoreV1Api(api).list_namespaced_pod, ns, field_selector=f"metadata.name={name}",
                                 timeout_seconds=120):
            if objects.pod_ready(ev["raw_object"]):
                return


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="exec round trips")
    ap.add_argument("--many", type=int, default=1000, help="sandboxes listed and watched")
    ap.add_argument("--rate", type=float, default=100.0, help="changes per second under load")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the load lasts")
    args = ap.parse_args()
    if not k8s.is_running():
        sys.exit("the bin/k8s-dev cluster is not running: bin/k8s-dev up")
    cluster = k8s.K8sCluster(k8s.state_dir())
    ns = "bench-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    env = {"XDG_DATA_HOME": str(tmp / "d"), "XDG_CONFIG_HOME": str(tmp / "c"), "XDG_STATE_HOME": str(tmp / "s"),
           "HOME": str(tmp), "LAP_KUBECONFIG": str(cluster.kubeconfig), "LAP_KUBE_CONTEXT": cluster.context,
           "LAP_KUBE_NAMESPACES": f"bench={ns}"}
    settings = load_settings(env, cwd=tmp)
    store = await open_store(f"sqlite://{tmp / 'lap.db'}")
    b = KubernetesBackend(store, settings, environ=env)
    client, api, ws = await raw_clients(cluster)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(ws)
    version = await b.version()
    try:
        print(f"cluster {cluster.context}, agent-sandbox {version}, namespace {ns}")
        # --- first ensure -> ready -> first output ---------------------------------------
        t0 = time.perf_counter()
        spec = SandboxSpec(id="s-bench000001", team="bench", settings=SandboxSettings())
        await b.ensure(spec)
        t_ready = time.perf_counter()
        await b.exec(spec.id, ["echo", "hi"])
        t_out = time.perf_counter()
        print(f"lap-tui  first ensure -> Ready {ms(t_ready - t0)}, -> first output {ms(t_out - t0)}")
        raw_spec = SandboxSpec(id="s-benchraw001", team="bench", settings=SandboxSettings())
        body = objects.sandbox_object(raw_spec, namespace=ns, version=version, image="python:3.12-slim",
                                      plain_env={}, has_secret=False)
        t0 = time.perf_counter()
        await custom.create_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, body)
        await raw_ready(client, api, ns, raw_spec.id)
        t_ready = time.perf_counter()
        await core.connect_get_namespaced_pod_exec(raw_spec.id, ns, command=["echo", "hi"], stdout=True, stderr=True)
        t_out = time.perf_counter()
        print(f"raw      create -> Ready {ms(t_ready - t0)}, -> first output {ms(t_out - t0)}")

        # --- exec round trip ----------------------------------------------------------------
        lap, raw = [], []
        for _ in range(args.n):
            t = time.perf_counter()
            await b.exec(spec.id, ["true"])
            lap.append(time.perf_counter() - t)
            t = time.perf_counter()
            await core.connect_get_namespaced_pod_exec(raw_spec.id, ns, command=["true"], stdout=True, stderr=True)
            raw.append(time.perf_counter() - t)
        print(f"exec round trip (n={args.n}): lap-tui p50 {ms(pct(lap, .5))} p90 {ms(pct(lap, .9))}; "
              f"raw p50 {ms(pct(raw, .5))} p90 {ms(pct(raw, .9))}")

        # --- suspend -> resume -> first output -----------------------------------------------
        await b.suspend(spec.id)
        t0 = time.perf_counter()
        await b.resume(spec.id)
        t_ready = time.perf_counter()
        await b.exec(spec.id, ["echo", "back"])
        print(f"lap-tui  resume -> Ready {ms(t_ready - t0)}, -> first output {ms(time.perf_counter() - t0)}")

        # --- watch latency ------------------------------------------------------------------
        await watch_latency(b, client, api, custom, ns, version, spec.id)

        # --- many sandboxes -------------------------------------------------------------------
        await many(b, custom, ns, version, args)
    finally:
        await b.close()
        await api.close()
        await ws.close()
        await store.close()
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


async def watch_latency(b, client, api, custom, ns, version, sid) -> None:
    from kubernetes.aio import watch

    lap_seen: dict[str, float] = {}
    raw_seen: dict[str, float] = {}
    lap_q: asyncio.Queue = asyncio.Queue()

    async def lap_watch():
        async for ev in b.watch():
            if ev.status.id == sid:
                lap_seen[ev.status.phase.value] = time.perf_counter()
                lap_q.put_nowait(ev)

    async def raw_watch():
        w = watch.Watch()
        async with w:
            async for ev in w.stream(custom.list_namespaced_custom_object, objects.GROUP, version, ns, objects.PLURAL,
                                     field_selector=f"metadata.name={sid}"):
                raw_seen[ev["raw_object"]["spec"].get("operatingMode", "")] = time.perf_counter()

    tasks = [asyncio.create_task(lap_watch()), asyncio.create_task(raw_watch())]
    try:
        await lap_q.get()  # the initial "added"
        lap, raw = [], []
        for i in range(10):
            mode = "Suspended" if i % 2 == 0 else "Running"
            lap_seen.clear()
            raw_seen.clear()
            t = time.perf_counter()
            await custom.patch_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, sid,
                                                        {"spec": {"operatingMode": mode}},
                                                        _content_type="application/merge-patch+json")
            t_api = time.perf_counter()  # the API has stored the change: the event exists now
            want = SandboxPhase.SUSPENDED if mode == "Suspended" else SandboxPhase.RUNNING
            while True:
                ev = await asyncio.wait_for(lap_q.get(), 120)
                if ev.status.phase is want:
                    break
            lap.append(lap_seen[want.value] - t_api)
            while mode not in raw_seen:
                await asyncio.sleep(0.001)
            raw.append(raw_seen[mode] - t_api)
        # lap-tui's Running waits for the pod too (a status change, not just the spec): so its
        # figure for resumes includes the controller; suspensions compare like for like.
        sus = [x for i, x in enumerate(lap) if i % 2 == 0]
        print(f"watch latency after the API write: lap-tui watch() suspend p50 {ms(pct(sus, .5))} "
              f"max {ms(max(sus))}, resume->ready p50 {ms(pct([x for i, x in enumerate(lap) if i % 2], .5))}; "
              f"raw watch p50 {ms(pct(raw, .5))} max {ms(max(raw))}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def many(b, custom, ns, version, args) -> None:
    n = args.many
    base = objects.sandbox_object(SandboxSpec(id="x", team="bench", settings=SandboxSettings()), namespace=ns,
                                  version=version, image="python:3.12-slim", plain_env={}, has_secret=False,
                                  running=False)
    del base["spec"]["volumeClaimTemplates"]  # no PVC per object: this measures lists and watches
    base["spec"]["podTemplate"]["spec"]["containers"][0].pop("volumeMounts")
    sem = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        body = json.loads(json.dumps(base))
        body["metadata"]["name"] = f"s-many{i:07d}"
        async with sem:
            await custom.create_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, body)

    t = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(n)))
    print(f"created {n} suspended Sandboxes in {time.perf_counter() - t:.1f} s")
    rss0 = rss_mb()
    t = time.perf_counter()
    listed = await b.list()
    print(f"list(): {len(listed)} sandboxes in {ms(time.perf_counter() - t)}")
    seen: dict[str, tuple[float, str]] = {}
    added = asyncio.Event()
    changed = asyncio.Condition()
    count = 0

    async def consume():
        nonlocal count
        async for ev in b.watch():
            count += 1
            seen[ev.status.id] = (time.perf_counter(), ev.status.message)
            if count >= len(listed):
                added.set()
            async with changed:
                changed.notify_all()

    t = time.perf_counter()
    task = asyncio.create_task(consume())
    await asyncio.wait_for(added.wait(), 300)
    print(f"watch(): initial {count} events in {ms(time.perf_counter() - t)}; RSS {rss0:.0f} -> {rss_mb():.0f} MB")
    # Load: `rate` annotation patches per second on random sandboxes (MODIFIED events the reflector
    # must take in); every second one probe toggles a visible field, and its latency is measured.
    stop = time.perf_counter() + args.seconds
    interval = 1.0 / args.rate
    sent = 0

    async def load():
        nonlocal sent
        nxt = time.perf_counter()
        i = 0
        while time.perf_counter() < stop:
            name = f"s-many{(i * 7919) % n:07d}"
            i += 1
            asyncio.ensure_future(custom.patch_namespaced_custom_object(
                objects.GROUP, version, ns, objects.PLURAL, name, {"metadata": {"annotations": {"bench": str(i)}}},
                _content_type="application/merge-patch+json"))
            sent += 1
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    probe_lat = []

    async def probes():
        k = 0
        while time.perf_counter() < stop - 1:
            name = f"s-many{k % n:07d}"
            k += 1
            mode = "Running"
            t = time.perf_counter()
            await custom.patch_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, name,
                                                        {"spec": {"operatingMode": mode}},
                                                        _content_type="application/merge-patch+json")
            t_api = time.perf_counter()
            async with changed:
                await asyncio.wait_for(changed.wait_for(lambda: seen.get(name, (0,))[0] >= t), 60)
            probe_lat.append(seen[name][0] - t_api)
            await custom.patch_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, name,
                                                        {"spec": {"operatingMode": "Suspended"}},
                                                        _content_type="application/merge-patch+json")
            await asyncio.sleep(1.0)

    t = time.perf_counter()
    await asyncio.gather(load(), probes())
    took = time.perf_counter() - t
    print(f"under load: {sent} changes in {took:.1f} s ({sent / took:.0f}/s); probe changes seen in watch() "
          f"p50 {ms(pct(probe_lat, .5)) if probe_lat else '-'} max {ms(max(probe_lat)) if probe_lat else '-'} "
          f"(n={len(probe_lat)}); RSS {rss_mb():.0f} MB")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
