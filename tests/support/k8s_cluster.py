"""A real Kubernetes control plane for tests: the `bin/k8s-dev` cluster (docs/KUBERNETES-DEV.md).

The `k8s_cluster` fixture (session scope, tests/k8s/conftest.py) reuses a running
`bin/k8s-dev` cluster (repairing a partly running one) or starts one, and at the end stops
only what it started: a cluster it created is deleted (`down`), a stopped one it started is
stopped again (`stop`).
When the binaries are not built it skips, or fails under CI=true (the suite's `need()` rule).

The object it yields, `K8sCluster`:

- `.kubeconfig` (Path) and `.context` (str): give both to the `kubernetes` client
  (`config.load_kube_config(config_file=str(c.kubeconfig), context=c.context)`).
- `.kubectl(*args, input=None, check=False, timeout=120) -> CompletedProcess[str]`: the built
  kubectl on this cluster (text mode, output captured).
- `.volume_dir(namespace, claim) -> Path`: the host directory standing in for that PVC: the
  working directory of `exec` in any pod that mounts the claim (a pod with no PVC: its name).
- `.log_file(namespace, pod) -> Path`: the pod's log file (CRI format) served by pods/log;
  append with `.append_log(namespace, pod, line)`.
- `.restart_apiserver(while_down=None)`: kills kube-apiserver (SIGKILL, like a crash) with the
  components that watch it (kwok, controller-manager, scheduler; etcd keeps running), waits
  until they have exited, calls `while_down()` if given, starts them again, waits until
  /readyz answers, then restarts the agent-sandbox controller through `bin/k8s-dev up`, whose
  canary proves the cluster works again. (Restarting the watchers matters: client-go
  informers back off for up to a minute after repeated broken watches.) Open watches break; clients
  must re-watch from their last resourceVersion.
- `.compact_etcd() -> int`: compacts etcd up to its current revision (returned). A
  resourceVersion older than that then gets 410 Gone from etcd; the API server's watch cache
  may still serve a recent one until it restarts, so for a guaranteed 410 call
  `restart_apiserver()` after it.
- `.state_dir` (Path): the cluster's state directory (logs of the controller and pod host).

`k8s_namespace` (function scope) is a fresh namespace for one test, deleted afterwards.

kwok differs from a kubelet (see the doc): pods run no image; exec runs unisolated on this
host; a non-zero exit comes back as a 500 "exit status N", stdin EOF is never delivered.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
K8S_DEV = ROOT / "bin" / "k8s-dev"


def state_dir() -> Path:
    return Path(os.environ.get("LAP_K8S_DIR") or Path.home() / ".cache/lap-tui/k8s-dev/cluster")


def _bin_dir() -> Path:
    """The binary cache dir for the versions in dev/k8s/versions.sh (as bin/k8s-dev computes it)."""
    out = subprocess.run(["bash", "-c", f'. "{ROOT}/dev/k8s/versions.sh" && echo "$K8S_DEV_BIN"'],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def missing_binaries() -> list[str]:
    out = subprocess.run(["bash", "-c", f'. "{ROOT}/dev/k8s/versions.sh" && echo "${{K8S_DEV_BINARIES[@]}}"'],
                         capture_output=True, text=True, check=True)
    b = _bin_dir()
    return [n for n in out.stdout.split() if not os.access(b / n, os.X_OK)]


def status() -> str:
    """"running", "partly running" (the API answers, something else is down) or "stopped"."""
    out = subprocess.run([str(K8S_DEV), "status"], capture_output=True, text=True)
    if out.returncode == 0:
        return "running"
    return "partly running" if "partly running" in out.stdout else "stopped"


def is_running() -> bool:
    return status() == "running"


def _wait(cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"k8s-dev: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes, once all its
    # threads have exited: a killed Go program's main thread turns zombie first, and its files
    # (the API server's listening socket) are released only with the last thread.
    try:
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z":
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (OSError, IndexError):
        return False


class K8sCluster:
    def __init__(self, state: Path) -> None:
        self.state_dir = state
        env = dict(line.split("=", 1) for line in (state / "cluster.env").read_text().splitlines() if "=" in line)
        self.kubeconfig = state / "kubeconfig"
        self.context: str = env["CONTEXT"]
        self.bin_dir = Path(env["K8S_DEV_BIN"])
        self.cluster_dir = Path(env["KWOK_WORKDIR"]) / "clusters" / env["CLUSTER_NAME"]
        self._env = env

    def kubectl(self, *args: str, input: str | None = None, check: bool = False,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True, check=check, timeout=timeout)

    def volume_dir(self, namespace: str, claim: str) -> Path:
        return self.state_dir / "volumes" / namespace / claim

    def log_file(self, namespace: str, pod: str) -> Path:
        return self.state_dir / "logs" / namespace / f"{pod}.log"

    def append_log(self, namespace: str, pod: str, line: str, stream: str = "stdout") -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        with open(self.log_file(namespace, pod), "a", encoding="utf-8") as f:
            f.write(f"{now} {stream} F {line}\n")

    def api_ready(self) -> bool:
        return self.kubectl("get", "--raw", "/readyz", timeout=10).returncode == 0

    def restart_apiserver(self, while_down: Callable[[], None] | None = None) -> None:
        # Under bin/k8s-dev's lock: two test sessions on one cluster must not interleave restarts.
        with open(self.state_dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._kill_and_start_apiserver(while_down)
            # The agent-sandbox controller's informers back off exponentially after each broken
            # watch (0.8 s doubling to 30 s, plus jitter): after a few restarts in one session
            # it would take up to a minute to see a new Sandbox. A fresh controller does not.
            ctl = self.state_dir / "agent-sandbox-controller.pid"
            try:
                cpid = int(ctl.read_text().strip())
            except (OSError, ValueError):
                cpid = 0
            if cpid and _pid_alive(cpid):
                os.kill(cpid, signal.SIGTERM)
                _wait(lambda: not _pid_alive(cpid), "the agent-sandbox controller to exit", 60)
        # `up` starts the controller again and proves with its canary that the cluster works.
        out = subprocess.run([str(K8S_DEV), "up"], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"bin/k8s-dev up after the restart failed:\n{out.stderr[-4000:]}")

    def _kill_and_start_apiserver(self, while_down: Callable[[], None] | None) -> None:
        # The API server and the components that watch it (kwok, the controller-manager, the
        # scheduler) go down together, like a control-plane node rebooting; etcd keeps running.
        # Restarting the watchers matters: client-go informers back off exponentially after a
        # broken watch (0.8 s doubling to 30 s, plus jitter), and kwok's lagging Exec informer
        # answered "no exec found" for a pod it had already marked Ready.
        pid_files = [self.cluster_dir / "pids" / f"{c}.pid"
                     for c in ("kube-apiserver", "kwok-controller", "kube-controller-manager", "kube-scheduler")]
        pids = []
        for f in pid_files:
            try:
                pid = int(f.read_text().strip())
                # Only a process of this cluster: a stale pid file may name a reused pid.
                if str(self.cluster_dir) in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "):
                    pids.append(pid)
            except (OSError, ValueError):
                continue
        # SIGKILL, like a crash: on SIGTERM the API server stops listening at once but then
        # waits 60 s for open watches to drain before it exits and can be started again.
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait(lambda: not any(_pid_alive(p) for p in pids), "the control plane to exit", 60)
        # kwokctl starts a component whose pid file names no live process; an exited process
        # not yet reaped (a zombie) still counts as live to it, so the files go.
        for f in pid_files:
            f.unlink(missing_ok=True)
        pid_file = pid_files[0]
        if while_down is not None:
            while_down()
        # `kwokctl start cluster` starts the components that are not running.
        env = {**os.environ, "KWOK_WORKDIR": self._env["KWOK_WORKDIR"],
               "KWOK_KUBECTL_BINARY": str(self.bin_dir / "kubectl"),
               "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}"}
        for attempt in range(3):
            subprocess.run([str(self.bin_dir / "kwokctl"), "--name", self._env["CLUSTER_NAME"], "start", "cluster"],
                           env=env, check=True, capture_output=True, timeout=180)
            # If the new process exits at once (seen: "bind: address already in use"), start
            # it again rather than wait for an API server that is not running.
            new_pid = int(pid_file.read_text().strip())
            _wait(lambda: self.api_ready() or not _pid_alive(new_pid), "the API server to answer /readyz again")
            if self.api_ready():
                return
            pid_file.unlink()
        raise RuntimeError(f"kube-apiserver did not start again: see {self.cluster_dir / 'logs/kube-apiserver.log'}")

    def _etcd_url(self) -> str:
        conf = (self.cluster_dir / "kwok.yaml").read_text()
        # kwok.yaml (written by kwokctl) holds `etcdPort: N` under options.
        for line in conf.splitlines():
            if line.strip().startswith("etcdPort:"):
                return f"http://127.0.0.1:{int(line.split(':', 1)[1])}"
        raise RuntimeError(f"no etcdPort in {self.cluster_dir / 'kwok.yaml'}")

    def _etcd(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self._etcd_url() + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def compact_etcd(self) -> int:
        # etcd's JSON gateway: a range read gives the current revision, then compact up to it.
        rev = int(self._etcd("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev


def start_or_reuse() -> tuple[K8sCluster, str | None]:
    """The cluster and how to put things back afterwards: None when it was already running
    (or partly: it is repaired and left running for whoever runs it), "down" when it was
    created here (delete it), "stop" when an existing, stopped cluster was started here (stop
    it again, keep it)."""
    before = status()
    if before == "running":
        return K8sCluster(state_dir()), None
    existed = (state_dir() / "kwok").exists()
    out = subprocess.run([str(K8S_DEV), "up"], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"bin/k8s-dev up failed ({out.returncode}):\n{out.stderr[-4000:]}")
    if before == "partly running":
        return K8sCluster(state_dir()), None
    return K8sCluster(state_dir()), "stop" if existed else "down"


def teardown(how: str | None) -> None:
    """Undo what start_or_reuse did: `bin/k8s-dev down` or `stop`, or nothing."""
    if how is not None:
        subprocess.run([str(K8S_DEV), how], capture_output=True, text=True, timeout=300, check=True)
