"""The relay Deployment (deploy/k8s/relay.yaml) as it runs: `lap-tui relay` with its pod's command
line and environment (the ConfigMap, the Secret's keys), its probes run as the kubelet would
(httpGet on /healthz, no token), its SIGTERM (exit 0), and a worker given the ConfigMap's
LAP_RELAY_URL sending a real CLI's turn (Claude Code in a Sandbox on bin/k8s-dev) through that
relay instead of starting one of its own.

kwok's pods run no images and its exec runs on this host, so the relay runs here with the
Deployment's settings, on a free local port (LAP_RELAY_LISTEN; the probes' named port is sent
there instead of the pod's 4141), and LAP_RELAY_URL names that port instead of the Service's DNS
name (which only a real cluster resolves: test_manifests checks the ConfigMap names the Service)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lap_tui.domain.sandbox import session_sandbox_id
from lap_tui.sandbox.k8s import objects
from tests.conftest import run_cli
from tests.harness.conftest import CLI_DIR, need_cli
from tests.platform.manifests import (SYSTEM_NS, TEAM_NS, apply, delete_namespaces, find, render,
                                      token_kubeconfig, unique_names)
from tests.support.pgserver import free_port
from tests.support.scripted_apis import MESSAGES_PATH
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call
from tests.support.waiting import until

MASTER_KEY = "sk-relay-deployment-master-key"
TEAM = "team1"
# The worker's data directory, longer than a unix socket path allows once the relay's is added:
# a worker on LAP_RELAY_URL binds no socket, so its length must not matter (it once did).
WDATA = "wdata-" + "d" * 100


def _http_probe(c: dict, probe: str, port: int) -> bool:
    """The container's httpGet probe as the kubelet runs it: GET its path on the pod's port (the
    named one), no headers, the probe's timeout; success is a status in 200-399."""
    spec = c[probe]
    assert set(spec) >= {"httpGet", "timeoutSeconds"} and "exec" not in spec and "tcpSocket" not in spec
    get = spec["httpGet"]
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert get["port"] in named and "httpHeaders" not in get and get.get("scheme", "HTTP") == "HTTP"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=spec["timeoutSeconds"])
    try:
        conn.request("GET", get["path"])
        return 200 <= conn.getresponse().status < 400
    except OSError:
        return False
    finally:
        conn.close()


def _container_env(c: dict, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    out = {}
    for e in c["env"]:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            out[e["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            out[e["name"]] = e["value"]
    return out


async def test_the_relay_deployment_serves_a_workers_cli_turn(k8s_cluster, pg_url, tmp_path: Path):
    need_cli("claude-code")
    names = unique_names()
    sys_ns, team_ns = names[SYSTEM_NS], names[TEAM_NS]
    objs = render(k8s_cluster, names)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
    config = find(objs, "ConfigMap")["data"]
    secrets = {("lap-tui-secrets", "database-url"): pg_url, ("lap-tui-secrets", "litellm-api-key"): MASTER_KEY}
    relay_data = Path("/tmp") / f"lap-r-{os.getpid()}-{time.monotonic_ns() % 10**9}"  # short: its unix socket
    relay = None
    try:
        assert apply(k8s_cluster, objs).returncode == 0
        with ScriptedGateway(models=["gpt-test"]) as gw:
            # The relay pod's environment: the ConfigMap, then the container's env (Secret keys).
            dep = find(objs, "Deployment", "lap-tui-relay")
            (c,) = dep["spec"]["template"]["spec"]["containers"]
            port = free_port()
            renv = {**base, **config, **_container_env(c, secrets), "LITELLM_API_BASE": gw.base_url,
                    "LAP_RELAY_LISTEN": f"127.0.0.1:{port}", "XDG_DATA_HOME": str(relay_data),
                    "XDG_STATE_HOME": str(tmp_path / "relay-state"), "PYTHONUNBUFFERED": "1"}
            with open(tmp_path / "relay.log", "wb") as log:
                relay = subprocess.Popen([sys.executable, "-m", "lap_tui", *c["args"]], env=renv, cwd=tmp_path,
                                         stdout=log, stderr=log)
            # readinessProbe, then livenessProbe: GET /healthz with no token, as the kubelet does.
            await until(lambda: _http_probe(c, "readinessProbe", port) or relay.poll() is not None,
                        "the relay ready", timeout=60)
            assert relay.poll() is None, (tmp_path / "relay.log").read_text()
            assert _http_probe(c, "livenessProbe", port)

            # A worker with the ConfigMap's settings and the workers' ServiceAccount only.
            kc = token_kubeconfig(k8s_cluster, sys_ns, "lap-tui-worker", tmp_path / "sa.kubeconfig")
            wenv = {**base, **config, "LAP_DATABASE_URL": pg_url, "LITELLM_API_BASE": gw.base_url,
                    "LITELLM_API_KEY": MASTER_KEY, "LAP_RELAY_URL": f"http://127.0.0.1:{port}",
                    "LAP_KUBECONFIG": str(kc), "LAP_KUBE_CONTEXT": "sa", "LAP_KUBE_NAMESPACES": f"{TEAM}={team_ns}",
                    "LAP_TEAM": TEAM, "LAP_HARNESS_DIR": str(CLI_DIR), "LAP_KUBE_HARNESS_DIR": str(CLI_DIR),
                    "XDG_DATA_HOME": str(tmp_path / WDATA), "XDG_CONFIG_HOME": str(tmp_path / "wconfig"),
                    "XDG_STATE_HOME": str(tmp_path / "wstate"), "PYTHONUNBUFFERED": "1"}
            assert wenv["LAP_SANDBOX_BACKEND"] == "kubernetes"

            def cli(*args: str) -> str:
                r = run_cli(*args, env=wenv, timeout=120)
                assert r.returncode == 0, (args, r.stderr)
                return r.stdout

            gw.path_defaults[MESSAGES_PATH] = stream(["ok"], path=MESSAGES_PATH)
            gw.push(stream([], tool_calls=[tool_call("toolu_w", "Bash", json.dumps(
                        {"command": "echo via-the-relay > r.txt", "description": "write"}))],
                           path=MESSAGES_PATH, requires_tools=True, usage={"prompt_tokens": 8, "completion_tokens": 4}),
                    stream(["Done."], path=MESSAGES_PATH, requires_tools=True,
                           usage={"prompt_tokens": 13, "completion_tokens": 2}))
            cli("agents", "create", "cc", "--model", "claude-test", "--harness", "claude-code", "--team", TEAM)
            session_id = cli("sessions", "new", "cc", "--team", TEAM).strip()
            cli("send", session_id, "write r.txt")  # queued: the worker drives it
            w = subprocess.run([sys.executable, "-m", "lap_tui", "worker", "--once", "--poll", "0.1"], env=wenv,
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
            assert w.returncode == 0, w.stderr
            from lap_tui.store import open_store

            store = await open_store(pg_url)
            try:
                (turn,) = await store.list_turns(session_id)
                events = await store.read_events(session_id)
            finally:
                await store.close()
            assert turn.status.value == "completed", (turn.error, w.stderr[-2000:])
            # Charged by the Deployment's relay (the only one: the worker started none).
            assert (turn.prompt_tokens, turn.completion_tokens) == (21, 6)
            assert not (tmp_path / WDATA / "lap-tui" / "relay").exists()
            started = [e.data for e in events if e.kind == "tool.started"]
            assert len(started) == 1 and "r.txt" in started[0]["arguments"]
            vol = k8s_cluster.volume_dir(team_ns, objects.pvc_name(session_sandbox_id(session_id)))
            assert (vol / "r.txt").read_text() == "via-the-relay\n"
            calls = [q for q in gw.requests if q.path == MESSAGES_PATH]
            assert calls and all(q.headers.get("authorization") == f"Bearer {MASTER_KEY}" for q in calls)

            # The liveness probe fails once the relay no longer answers.
            relay.send_signal(signal.SIGSTOP)
            try:
                assert not _http_probe(c, "livenessProbe", port)
            finally:
                relay.send_signal(signal.SIGCONT)
            assert _http_probe(c, "livenessProbe", port)
            # The kubelet's SIGTERM (after preStop): it leaves the Service and exits 0 within
            # the pod's terminationGracePeriodSeconds.
            relay.terminate()
            assert await asyncio.to_thread(relay.wait, dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) == 0
            assert not _http_probe(c, "readinessProbe", port)
    finally:
        if relay is not None:
            relay.kill()
            relay.wait(30)
        delete_namespaces(k8s_cluster, names)
        import shutil

        shutil.rmtree(relay_data, ignore_errors=True)
