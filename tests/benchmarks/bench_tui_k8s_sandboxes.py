#!/usr/bin/env python3
"""Issue 13's figure: the app's Sandboxes view on the Kubernetes backend with 1,000 Sandboxes
across 10 team namespaces under ~100 changes/s: keypress latency, app CPU and RSS, each beside
its floor from the same run (the same keys on the local backend, 1,000 store rows, no churn).
Also what the 1,000 Sandboxes cost the bin/k8s-dev cluster (its processes' RSS and CPU).

- 10 namespaces `tuib-<hex>-0..9` (teams `tuib0..9`), 1,000 Sandboxes made through the API
  directly (16 creates in flight; lap-tui's labels, no PVC). They are created Suspended
  (`operatingMode: Suspended` / `replicas: 0`): no pods; `--running K` makes the first K
  Running instead, so the agent-sandbox controller makes their pods (kwok marks them Running,
  the pod host gives each an exec), and the time until all K are Ready (or until no more came
  Ready for 60 s) is printed.
- `lap-tui --view sandboxes` runs in a private tmux (../shared/bench/tui_ttfp.py) with
  LAP_KUBECONFIG / LAP_KUBE_CONTEXT / LAP_KUBE_NAMESPACES on the cluster. Keys are typed into
  the `/` filter every 0.5 s and each is timed until the filter line shows it (as in
  bench_tui_sandboxes.py).
- A separate process writes ~RATE changes/s to random Sandboxes: annotation patches (watch
  events the app must decode and compare; no visible change) and, for --flip-share of them,
  suspend/resume flips of a rotating set of 20 (visible: phase, a pod comes and goes).
- A last pass types into the local app again while the same churn runs on the cluster (which
  that app does not watch): the machine's floor under the cluster's load, to tell what the
  Kubernetes view costs from what the busy CPUs cost.
- Everything it made is deleted at the end (its namespaces, waited for).

    .venv/bin/python tests/benchmarks/bench_tui_k8s_sandboxes.py [--rows 1000] [--namespaces 10]
        [--rate 100] [--seconds 10] [--running 0] [--flip-share 0.1] [--gc] [--profile PATH] [--skip-floors]

`--gc` logs the Kubernetes app's garbage collections (a sitecustomize on its PYTHONPATH) and
prints the full passes and the young ones over 5 ms during each measurement; `--profile PATH`
samples the app under churn with py-spy (raw folded stacks; `pip install py-spy` into the venv).

Prints figures; asserts nothing. Needs `bin/k8s-dev up` (never stops it: others use it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.benchmarks.bench_tui_sandboxes import LAP, _rss, cpu_s, seed  # noqa: E402
from tests.benchmarks.bench_tui_sandboxes import SESSION, AppSpec, PrivateTmux  # noqa: E402
from tests.support import k8s_cluster as k8s  # noqa: E402

# The cluster's processes, by a word of their command line (bin/k8s-dev's components).
CLUSTER_PROCS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok ",
                 "agent-sandbox-controller", "pod_host.py")
FLIP_SET = 20


def cluster_pids() -> dict[str, int]:
    found: dict[str, int] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name in CLUSTER_PROCS:
            word = cmd.split(" ", 1)[0]
            if name.strip() in Path(word).name or (name == "pod_host.py" and "pod_host.py" in cmd):
                found.setdefault(name.strip(), int(p.name))
    return found


def cluster_usage(pids: dict[str, int]) -> tuple[float, float]:
    """(RSS MB, CPU seconds) summed over the cluster's processes."""
    rss = cpu = 0.0
    for pid in pids.values():
        try:
            rss += _rss(pid)
            cpu += cpu_s(pid)
        except OSError:
            pass
    return rss, cpu


async def make_sandboxes(cluster: k8s.K8sCluster, names: list[tuple[str, str, str]], running: int) -> str:
    """Create the Sandboxes (name, namespace, team); returns the version spoken."""
    from lap_tui.domain.agent import SandboxSettings
    from lap_tui.domain.sandbox import SandboxSpec
    from lap_tui.sandbox.k8s import objects
    from lap_tui.sandbox.k8s.client import connect, served_versions

    apis = await connect(kubeconfig=str(cluster.kubeconfig), context=cluster.context)
    try:
        version = (await served_versions(apis))[0]
        sem = asyncio.Semaphore(16)

        async def create(i: int, name: str, ns: str, team: str) -> None:
            body = objects.sandbox_object(SandboxSpec(id=name, team=team, settings=SandboxSettings()), namespace=ns,
                                          version=version, image=objects.DEFAULT_IMAGE, plain_env={},
                                          has_secret=False, running=i < running)
            del body["spec"]["volumeClaimTemplates"]  # no PVC each: this measures the view
            body["spec"]["podTemplate"]["spec"]["containers"][0].pop("volumeMounts")
            async with sem:
                await apis.custom.create_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, body)

        await asyncio.gather(*(create(i, *n) for i, n in enumerate(names)))
        return version
    finally:
        await apis.close()


CHURN = r"""
import asyncio, json, random, sys, time
from lap_tui.sandbox.k8s import objects
from lap_tui.sandbox.k8s.client import connect

async def main(kubeconfig, context, version, names, rate, seconds, flip_share, flip_set):
    apis = await connect(kubeconfig=kubeconfig, context=context)
    patch = lambda ns, name, body: apis.custom.patch_namespaced_custom_object(
        objects.GROUP, version, ns, objects.PLURAL, name, body, _content_type="application/merge-patch+json")
    flips = names[-flip_set:]  # suspended ones at the end: a flip to Running makes a pod
    state = {n[0]: False for n in flips}
    sent = {"annotate": 0, "flip": 0, "errors": 0}
    pending = set()
    rng = random.Random(7)
    t0 = time.monotonic()
    n = 0
    def done(t):
        pending.discard(t)
        if t.exception() is not None:
            sent["errors"] += 1
    while time.monotonic() - t0 < seconds:
        if rng.random() < flip_share:
            name, ns, _ = flips[n % len(flips)]
            state[name] = not state[name]
            if version == "v1alpha1":
                body = {"spec": {"replicas": 1 if state[name] else 0}}
            else:
                body = {"spec": {"operatingMode": "Running" if state[name] else "Suspended"}}
            sent["flip"] += 1
        else:
            name, ns, _ = names[rng.randrange(len(names))]
            body = {"metadata": {"annotations": {"bench-churn": str(n)}}}
            sent["annotate"] += 1
        t = asyncio.ensure_future(patch(ns, name, body))
        pending.add(t)
        t.add_done_callback(done)
        n += 1
        ahead = t0 + n / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
    if pending:
        await asyncio.wait(pending, timeout=30)
    # leave the flipped ones suspended again (cleanup deletes them anyway)
    sent["seconds"] = time.monotonic() - t0
    print(json.dumps(sent), flush=True)
    await apis.close()

a = json.loads(sys.argv[1])
asyncio.run(main(**a))
"""


# --gc: a sitecustomize on the app's PYTHONPATH logs every garbage collection that pauses the app
# (generation, ms, wall time), so the keys' latency can be set beside the collector's pauses.
GC_HOOK = r"""
import gc, os, time
_out = open(os.environ["BENCH_GC_LOG"], "a", buffering=1)
_t = [0.0]
def _cb(phase, info):
    if phase == "start":
        _t[0] = time.perf_counter()
    else:
        ms = (time.perf_counter() - _t[0]) * 1000
        if info["generation"] == 2 or ms >= 5:
            _out.write(f"{time.time():.3f} {info['generation']} {ms:.1f} {info['collected']}\n")
gc.callbacks.append(_cb)
"""


def gc_env(path: str) -> dict[str, str]:
    hook = Path(tempfile.mkdtemp(prefix="lap-tuib-gc-"))
    (hook / "sitecustomize.py").write_text(GC_HOOK)
    return {"PYTHONPATH": str(hook), "BENCH_GC_LOG": path}


def gc_pauses(path: str, t0: float, t1: float) -> str:
    """The collections logged between t0 and t1 (wall times): full passes and the longest pause."""
    try:
        rows = [line.split() for line in Path(path).read_text().splitlines()]
    except OSError:
        return "no log"
    got = [(int(g), float(ms)) for t, g, ms, _ in rows if t0 <= float(t) <= t1]
    full = [ms for g, ms in got if g == 2]
    young = [ms for g, ms in got if g < 2]
    return (f"{len(full)} full passes" + (f" ({', '.join(f'{ms:.0f}' for ms in full)} ms)" if full else "")
            + f", {len(young)} young passes >= 5 ms" + (f" (max {max(young):.0f} ms)" if young else ""))


def start_churn(params: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHURN, json.dumps(params)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def measure(tm: PrivateTmux, pid: int, seconds: float, probe: str) -> dict:
    """Type `probe` into the `/` filter, one key each 0.5 s for `seconds`, each timed until the
    filter line (docked on top) shows it; the table refilters its rows on the same key."""
    lat: list[float] = []
    c0, t0 = cpu_s(pid), time.perf_counter()
    tm.send_keys(["/"])
    time.sleep(0.3)
    typed = ""
    while time.perf_counter() - t0 < seconds:
        if len(typed) == len(probe):
            tm.send_keys(["Escape", "@0.2", "/"])  # clear and reopen the filter
            time.sleep(0.3)
            typed = ""
            continue
        ch = probe[len(typed)]
        typed += ch
        want = re.compile(r"^\s*" + re.escape(typed) + r"\s*$", re.M)
        ts = time.perf_counter()
        tm.tmux(["send-keys", "-t", SESSION, "-l", ch])
        while True:
            screen, dead = tm.snapshot()
            if want.search(screen):
                lat.append((time.perf_counter() - ts) * 1000)
                break
            if dead or time.perf_counter() - ts > 5:
                if os.environ.get("BENCH_VERBOSE"):
                    print(screen, file=sys.stderr)
                lat.append(float("inf"))
                break
            time.sleep(0.005)
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - ts)))
    cpu = cpu_s(pid) - c0
    wall = time.perf_counter() - t0
    tm.send_keys(["Escape"])
    time.sleep(0.3)
    return {"cpu_pct": 100 * cpu / wall, "lat": lat, "rss": _rss(pid)}


def start_app(env: dict[str, str], at_least: int, size: str) -> tuple[PrivateTmux, int, float]:
    """The app in tmux, once its title counts at least `at_least` sandboxes: (tmux, pid, ms to that)."""
    w, h = map(int, size.split("x"))
    spec = AppSpec(name="sandboxes", command=[LAP, "--view", "sandboxes"], marker=r"\d+ sandboxes", env=env,
                   cwd=str(ROOT))
    tm = PrivateTmux(spec, w, h, "control")
    tm.start()
    pid = tm.pane_pid
    t0 = tm.release()
    while True:
        screen, dead = tm.snapshot()
        counts = [int(m) for m in re.findall(r"(\d+) sandboxes", screen)]
        if counts and max(counts) >= at_least:
            return tm, pid, (time.perf_counter() - t0) * 1000
        if dead or time.perf_counter() - t0 > 120:
            tm.close()
            raise SystemExit(f"the sandboxes view never showed {at_least} sandboxes:\n{screen}")
        time.sleep(0.02)


def row(label: str, m: dict, rate: str) -> str:
    lat = sorted(m["lat"])
    p90 = lat[int(0.9 * (len(lat) - 1))]
    return (f"| {label} | {rate} | {statistics.median(lat):.0f} / {p90:.0f} / {max(lat):.0f} (n={len(lat)}) "
            f"| {m['cpu_pct']:.0f} | {m['rss']:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--running", type=int, default=0, help="how many of the Sandboxes are Running (get pods)")
    ap.add_argument("--flip-share", type=float, default=0.1, help="share of the changes that suspend/resume")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--profile", metavar="PATH", help="py-spy record the Kubernetes app under churn into PATH "
                    "(raw, folded stacks; needs py-spy in the venv)")
    ap.add_argument("--skip-floors", action="store_true", help="only the Kubernetes rows (while profiling)")
    ap.add_argument("--gc", action="store_true", help="log the Kubernetes app's garbage collections (a "
                    "sitecustomize on its PYTHONPATH) and print those during each measurement")
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    if not k8s.is_running():
        sys.exit("the bin/k8s-dev cluster is not running: bin/k8s-dev up")
    cluster = k8s.K8sCluster(k8s.state_dir())
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"tuib-{tag}-{k}" for k in range(args.namespaces)]
    names = [(f"s-tui{i:07d}", namespaces[i % args.namespaces], f"tuib{i % args.namespaces}")
             for i in range(args.rows)]
    base = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "LITELLM_API_BASE": "http://127.0.0.1:9"}

    def xdg(tmp: Path) -> dict[str, str]:
        return {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
                "XDG_STATE_HOME": str(tmp / "state"), "HOME": str(tmp)}

    out: list[str] = []
    # --- the floor: the local backend, 1,000 store rows, no churn -------------------------------
    local_env = {**base, **xdg(Path(tempfile.mkdtemp(prefix="lap-tuib-local-")))}
    seed(local_env, args.rows)
    floor = loaded = None
    if not args.skip_floors:
        tm, pid, shown = start_app(local_env, args.rows, args.size)
        try:
            time.sleep(1.5)  # the backend's watch() takes over from the store read
            floor = measure(tm, pid, args.seconds, "sb-0")
        finally:
            tm.close()
        out.append(f"local backend: {args.rows} rows shown {shown:.0f} ms after exec")

    pids = cluster_pids()
    rss0, cpu0 = cluster_usage(pids)
    for ns in namespaces:
        cluster.kubectl("create", "namespace", ns, check=True)
    churn = None
    tm = None
    try:
        t = time.perf_counter()
        version = asyncio.run(make_sandboxes(cluster, names, args.running))
        made = time.perf_counter() - t
        rss1, cpu1 = cluster_usage(pids)
        out.append(f"cluster: {args.rows} Sandboxes ({version}, {args.running} Running) in {args.namespaces} "
                   f"namespaces created in {made:.1f} s; cluster RSS {rss0:.0f} -> {rss1:.0f} MB, "
                   f"CPU {cpu1 - cpu0:.1f} s while creating")
        if args.running:
            t = time.perf_counter()
            best, t_best = -1, t
            while True:
                res = cluster.kubectl("get", "pods", "-A", "-l", "app.kubernetes.io/managed-by=lap-tui",
                                      "-o", "json", check=True)
                ready = sum(1 for p in json.loads(res.stdout)["items"]
                            if p["metadata"]["namespace"] in namespaces and
                            any(c["type"] == "Ready" and c["status"] == "True"
                                for c in p.get("status", {}).get("conditions", [])))
                if ready > best:
                    best, t_best = ready, time.perf_counter()
                # all Ready, or none more for 60 s (on kwok a few pods have stayed Pending)
                if ready >= args.running or time.perf_counter() - t_best > 60:
                    break
                time.sleep(1)
            rss2, cpu2 = cluster_usage(pids)
            out.append(f"cluster: {best}/{args.running} pods Ready {t_best - t:.1f} s after the creates"
                       f"{'' if best >= args.running else ' (no more within 60 s)'}; cluster RSS {rss2:.0f} MB, "
                       f"CPU {cpu2 - cpu1:.1f} s meanwhile")
        k8s_env = {**base, **xdg(Path(tempfile.mkdtemp(prefix="lap-tuib-k8s-"))),
                   "LAP_KUBECONFIG": str(cluster.kubeconfig), "LAP_KUBE_CONTEXT": cluster.context,
                   "LAP_KUBE_NAMESPACES": ",".join(f"tuib{k}={ns}" for k, ns in enumerate(namespaces))}
        gc_log = str(Path(tempfile.mkdtemp(prefix="lap-tuib-gclog-")) / "gc.log")
        if args.gc:
            k8s_env.update(gc_env(gc_log))
        tm, pid, shown = start_app(k8s_env, args.rows, args.size)
        out.append(f"kubernetes backend: >= {args.rows} rows shown {shown:.0f} ms after exec "
                   f"(list + watch of every namespace; the cluster's other sandboxes show too)")
        time.sleep(1.5)
        w0 = time.time()
        idle = measure(tm, pid, args.seconds, "s-tui")
        if args.gc:
            out.append(f"gc, kubernetes no churn: {gc_pauses(gc_log, w0, time.time())}")
        # --- under churn ---------------------------------------------------------------------------
        # suspended ones last, so the flips resume a suspended Sandbox first
        flip_names = [n for i, n in enumerate(names) if i >= args.running][-FLIP_SET:]
        params = {"kubeconfig": str(cluster.kubeconfig), "context": cluster.context, "version": version,
                  "names": names[:-FLIP_SET] + flip_names, "rate": args.rate, "seconds": args.seconds + 2.5,
                  "flip_share": args.flip_share, "flip_set": FLIP_SET}
        c_before = cluster_usage(pids)[1]
        churn = start_churn(params)
        time.sleep(1.5)
        spy = None
        if args.profile:  # sampling the app's threads while the keys are timed (py-spy slows it a little)
            spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-p", str(pid), "-f", "raw",
                                    "-o", args.profile, "-d", str(int(args.seconds)), "-r", "200", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w0 = time.time()
        busy = measure(tm, pid, args.seconds, "s-tui")
        if args.gc:
            out.append(f"gc, kubernetes under churn: {gc_pauses(gc_log, w0, time.time())}")
        if spy is not None:
            spy.wait(timeout=60)
        sent = json.loads(churn.communicate(timeout=120)[0].strip().splitlines()[-1])
        c_after = cluster_usage(pids)[1]
        rss3 = cluster_usage(pids)[0]
        total = sent["annotate"] + sent["flip"]
        rate = f"~{total / sent['seconds']:.0f} ({sent['flip']} flips, {sent['errors']} errors)"
        out.append(f"churn: {total} patches in {sent['seconds']:.1f} s; cluster CPU {c_after - c_before:.1f} s "
                   f"meanwhile, RSS {rss3:.0f} MB")
        tm.close()
        tm = None
        # --- the machine's floor under that churn: the local app (which does not watch the
        # cluster) typed at while the same churn loads the cluster and the CPUs ----------------
        if not args.skip_floors:
            tm, pid, _ = start_app(local_env, args.rows, args.size)
            time.sleep(1.5)
            churn = start_churn(params)
            time.sleep(1.5)
            loaded = measure(tm, pid, args.seconds, "sb-0")
            sent2 = json.loads(churn.communicate(timeout=120)[0].strip().splitlines()[-1])
            rate2 = f"~{(sent2['annotate'] + sent2['flip']) / sent2['seconds']:.0f} on the cluster, not watched"
    finally:
        if churn is not None and churn.poll() is None:
            churn.kill()
        if tm is not None:
            tm.close()
        t = time.perf_counter()
        for ns in namespaces:
            cluster.kubectl("delete", "namespace", ns, "--wait=false")
        left = namespaces
        while left and time.perf_counter() - t < 300:
            time.sleep(1)
            left = [ns for ns in namespaces if cluster.kubectl("get", "namespace", ns).returncode == 0]
        out.append(f"cleanup: {len(namespaces)} namespaces deleted in {time.perf_counter() - t:.1f} s"
                   + (f"; still there: {left}" if left else ""))
    print("\n".join(out))
    print(f"\nSandboxes view, {args.rows:,} rows across {args.namespaces} namespaces, {args.size}")
    print("| backend, churn | changes/s | key latency ms (median / p90 / max) | app CPU % | app RSS MB |")
    print("|---|---|---|---|---|")
    if floor is not None:
        print(row("local, none (floor)", floor, "0"))
    print(row("kubernetes, none", idle, "0"))
    print(row("kubernetes, churn", busy, rate))
    if loaded is not None:
        print(row("local, same churn (machine floor)", loaded, rate2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
