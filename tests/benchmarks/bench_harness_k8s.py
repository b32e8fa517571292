"""CLI harness turns in Kubernetes pods (bin/k8s-dev, kwok). Prints figures; asserts nothing.

    .venv/bin/python -m tests.benchmarks.bench_harness_k8s [--turns 5]

Per installed CLI, one session in a Sandbox of a fresh namespace; the first turn (which makes
the Sandbox) is a warm-up. Then, p50 over --turns turns of a one-line answer:
- send -> first event: from starting `lap-tui send --wait` to the first journaled event of the
  CLI's output (this process polls the store every 10 ms)
- turn: the whole `lap-tui send --wait`
- the same CLI alone on this host (no lap-tui, no relay, straight to the gateway), in the same
  run: the floor. The difference is lap-tui's cost per turn in a pod: the detached start by
  exec, the follower's exec polls (a state check or a read each), the relay over TCP.
kwok's exec runs on this host, so there is no network hop to a node; a real cluster adds its
API server -> kubelet round trip to every exec.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import uuid
from pathlib import Path

from lap_tui.harness.cli import harness_root, installed_bin
from lap_tui.harness.definition import load_definitions
from tests.benchmarks.bench_harness import KEY, MODELS, lap, run_alone, timed_send
from tests.support import k8s_cluster as k8s
from tests.support.scripted_gateway import ScriptedGateway, stream


async def bench(name: str, env: dict, gw: ScriptedGateway, turns: int, cli_dir: Path) -> str:
    model, path = MODELS[name]
    if path:
        gw.path_defaults[path] = stream(["ok"], path=path)
    lap(env, "agents", "create", f"b-{name}", "--model", model, "--harness", name, "--team", "bench",
        "--sandbox-backend", "kubernetes")
    sid = lap(env, "sessions", "new", f"b-{name}", "--team", "bench").stdout.strip()
    db = env["LAP_DATABASE_URL"]
    firsts, totals = [], []
    for i in range(turns + 1):
        first, total = await timed_send(env, gw, path, db, sid, f"hello {i}")
        if i == 0:
            continue  # warm-up: it made the Sandbox
        totals.append(total)
        if first is not None:
            firsts.append(first)
    alone = [run_alone(name, gw, cli_dir, path) for _ in range(turns)]
    p50 = statistics.median
    return (f"{name:12s} in a pod: send->first event p50 {p50(firsts) * 1000:6.0f} ms | turn p50 "
            f"{p50(totals) * 1000:6.0f} ms (max {max(totals) * 1000:6.0f}) | the CLI alone p50 "
            f"{p50(alone) * 1000:6.0f} ms | lap-tui in a pod adds {(p50(totals) - p50(alone)) * 1000:6.0f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=5)
    args = ap.parse_args()
    cli_dir = Path(os.environ.get("LAP_HARNESS_DIR") or Path.home() / ".cache" / "lap-tui" / "harness-clis")
    cluster, how = k8s.start_or_reuse()
    ns = "bench-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", ns, check=True)
    data = Path(f"/tmp/lap-bk-{os.getpid()}")  # short: the relay's socket
    try:
        with ScriptedGateway(models=["gpt-test", "claude-test"]) as gw:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
            env.update(XDG_DATA_HOME=str(data / "d"), XDG_CONFIG_HOME=str(data / "c"), XDG_STATE_HOME=str(data / "s"),
                       LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY=KEY, LAP_HARNESS_DIR=str(cli_dir),
                       LAP_KUBE_HARNESS_DIR=str(cli_dir), LAP_KUBECONFIG=str(cluster.kubeconfig),
                       LAP_KUBE_CONTEXT=cluster.context, LAP_KUBE_NAMESPACES=f"bench={ns}",
                       LAP_DATABASE_URL=f"sqlite://{data / 'lap.db'}")
            (data / "s").mkdir(parents=True)
            for name, h in sorted(load_definitions()[0].items()):
                if h.is_cli and installed_bin(harness_root(Path("."), env), h):
                    print(await bench(name, env, gw, args.turns, cli_dir), flush=True)
    finally:
        pid = data / "d" / "lap-tui" / "relay" / "relay.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        shutil.rmtree(data, ignore_errors=True)
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        k8s.teardown(how)


if __name__ == "__main__":
    asyncio.run(main())
