#!/usr/bin/env python3
"""Issue 11's figure: a status change's latency from the API event to the Sandboxes view.

One Running Sandbox (among 20 in a fresh namespace of bin/k8s-dev) is suspended and resumed
ROUNDS times with a merge patch. A raw `kubernetes` watch in this process records when the
event that changes the sandbox's phase arrives (phase as the backend derives it,
`objects.status_from`); `lap-tui --view sandboxes` runs in tmux on the same cluster and the
screen is read every 5 ms until the row shows the new phase. Printed per direction: the raw
watch's delay after the patch (the floor) and the view's delay after that event.

    .venv/bin/python tests/benchmarks/bench_tui_k8s_status.py [--rounds 10]

Prints figures; asserts nothing. Needs `bin/k8s-dev up` (never stops it); deletes its namespace.
"""

from __future__ import annotations

import argparse
import subprocess
import asyncio
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.benchmarks.bench_tui_k8s_sandboxes import make_sandboxes, start_app  # noqa: E402
from tests.support import k8s_cluster as k8s  # noqa: E402


class RawWatch(threading.Thread):
    """The floor: the official client's watch, recording (phase, arrival) of the one Sandbox."""

    def __init__(self, cluster: k8s.K8sCluster, ns: str, name: str, version: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.ns, self.name, self.version = cluster, ns, name, version
        self.seen: list[tuple[str, float]] = []
        self.ready = threading.Event()

    def run(self) -> None:
        from kubernetes import client, config, watch

        from lap_tui.sandbox.k8s import objects

        api = client.CustomObjectsApi(config.new_client_from_config(str(self.cluster.kubeconfig),
                                                                    context=self.cluster.context))
        w = watch.Watch()
        self.ready.set()
        for ev in w.stream(api.list_namespaced_custom_object, objects.GROUP, self.version, self.ns,
                           objects.PLURAL, field_selector=f"metadata.name={self.name}"):
            phase = objects.status_from(ev["object"], None).phase.value
            if not self.seen or self.seen[-1][0] != phase:
                self.seen.append((phase, time.perf_counter()))

    def wait_phase(self, phase: str, after: float, limit: float = 60) -> float:
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            for p, t in self.seen:
                if p == phase and t >= after:
                    return t
            time.sleep(0.002)
        raise SystemExit(f"the raw watch never saw {phase}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    if not k8s.is_running():
        sys.exit("the bin/k8s-dev cluster is not running: bin/k8s-dev up")
    cluster = k8s.K8sCluster(k8s.state_dir())
    ns = f"tstat-{uuid.uuid4().hex[:6]}"
    names = [(f"s-tstat{i:06d}", ns, "tstat") for i in range(20)]
    target = names[0][0]
    cluster.kubectl("create", "namespace", ns, check=True)
    tm = None
    try:
        version = asyncio.run(make_sandboxes(cluster, names, running=1))
        raw = RawWatch(cluster, ns, target, version)
        raw.start()
        raw.ready.wait(30)
        env = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "LITELLM_API_BASE": "http://127.0.0.1:9",
               "LAP_KUBECONFIG": str(cluster.kubeconfig), "LAP_KUBE_CONTEXT": cluster.context,
               "LAP_KUBE_NAMESPACES": f"tstat={ns}"}
        tmp = Path(tempfile.mkdtemp(prefix="lap-tstat-"))
        env.update({"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
                    "XDG_STATE_HOME": str(tmp / "state"), "HOME": str(tmp)})
        tm, _pid, _shown = start_app(env, len(names), "160x40")
        row = re.compile(re.escape(target) + r"\s.*?\b(Running|Suspended|Pending)\b")

        def screen_phase() -> str | None:
            m = row.search(tm.snapshot()[0])
            return m.group(1) if m else None

        def wait_screen(phase: str, limit: float = 60) -> float:
            end = time.perf_counter() + limit
            while time.perf_counter() < end:
                if screen_phase() == phase:
                    return time.perf_counter()
                time.sleep(0.005)
            raise SystemExit(f"the view never showed {target} {phase}")

        wait_screen("Running", 120)
        field = "operatingMode" if version == "v1beta1" else "replicas"
        results: dict[str, tuple[list[float], list[float]]] = {"Suspended": ([], []), "Running": ([], [])}
        for _ in range(args.rounds):
            for phase, value in (("Suspended", "Suspended" if field == "operatingMode" else 0),
                                 ("Running", "Running" if field == "operatingMode" else 1)):
                patch = f'{{"spec":{{"{field}":{value!r}}}}}'.replace("'", '"')
                t0 = time.perf_counter()
                cluster.kubectl("patch", "sandbox", "-n", ns, target, "--type", "merge", "-p", patch, check=True)
                t_api = raw.wait_phase(phase, t0)
                t_view = wait_screen(phase)
                results[phase][0].append((t_api - t0) * 1000)
                results[phase][1].append(max(0.0, t_view - t_api) * 1000)
                time.sleep(0.3)
        print(f"status change -> Sandboxes view, {args.rounds} rounds ({version}, 20 sandboxes in the view)")
        print("| change | raw watch after the patch ms (median / max) | view after the event ms (median / max) |")
        print("|---|---|---|")
        for phase, (api, view) in results.items():
            print(f"| -> {phase} | {statistics.median(api):.0f} / {max(api):.0f} "
                  f"| {statistics.median(view):.0f} / {max(view):.0f} |")
    finally:
        if tm is not None:
            tm.close()
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
