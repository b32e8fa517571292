"""Shared by the Kubernetes backend tests: settings, store and backend on the bin/k8s-dev cluster."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from lap_tui.config import Settings, load_settings
from lap_tui.sandbox.k8s import KubernetesBackend
from tests.support.k8s_cluster import K8sCluster

SECRET = "sv-kube-secret-0451"
AGENT_SECRET = "sv-agent-secret-7788"
TEAM = "team1"


def k8s_env(tmp_path: Path, cluster: K8sCluster, namespace: str, **extra: str) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path),
            "LAP_KUBECONFIG": str(cluster.kubeconfig), "LAP_KUBE_CONTEXT": cluster.context,
            "LAP_KUBE_NAMESPACES": f"{TEAM}={namespace}", "CONTAINER_ENV_KUBE_SECRET": SECRET,
            "AGENT_TOKEN": AGENT_SECRET, **extra}


def k8s_settings(env: dict[str, str], tmp_path: Path) -> Settings:
    return load_settings(env, cwd=tmp_path)


def backend(store: Any, settings: Settings, env: dict[str, str], **kw: Any) -> KubernetesBackend:
    return KubernetesBackend(store, settings, environ=env, ready_timeout=120, **kw)


def kubectl_json(cluster: K8sCluster, *args: str) -> dict[str, Any]:
    out = cluster.kubectl(*args, "-o", "json", check=True)
    return json.loads(out.stdout)


async def until(cond: Any, what: str, timeout: float = 60.0) -> None:
    """Wait for a condition the test cannot be told of (a kubectl-visible state), bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(cond):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
