"""The shipped manifests (deploy/k8s), rendered by the cluster's own kubectl (kustomize), with
their namespaces renamed so that each test has its own on the shared bin/k8s-dev cluster."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.support.k8s_cluster import K8sCluster

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
SYSTEM_NS, TEAM_NS = "lap-tui", "lap-default"  # as shipped
MANAGER = "lap-tui-deploy"
NS_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def render(cluster: K8sCluster, names: dict[str, str], path: Path = DEPLOY) -> list[dict[str, Any]]:
    out = cluster.kubectl("kustomize", str(path), check=True).stdout
    objs = [o for o in yaml.safe_load_all(out) if o]
    for o in objs:
        meta = o["metadata"]
        if o["kind"] == "Namespace":
            meta["name"] = names.get(meta["name"], meta["name"])
        if "namespace" in meta:
            meta["namespace"] = names.get(meta["namespace"], meta["namespace"])
        for s in o.get("subjects", ()):
            if "namespace" in s:
                s["namespace"] = names.get(s["namespace"], s["namespace"])
        if o["kind"] == "NetworkPolicy":  # peers name namespaces by their automatic name label
            for rule in o["spec"].get("egress", ()):
                for peer in rule.get("to", ()):
                    sel = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                    if NS_NAME_LABEL in sel:
                        sel[NS_NAME_LABEL] = names.get(sel[NS_NAME_LABEL], sel[NS_NAME_LABEL])
        if o["kind"] == "ConfigMap":  # Service addresses: <service>.<namespace>.svc
            for k, v in o.get("data", {}).items():
                for old, new in names.items():
                    v = v.replace(f".{old}.svc", f".{new}.svc")
                o["data"][k] = v
    return objs


def unique_names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {SYSTEM_NS: f"t-{tag}-sys", TEAM_NS: f"t-{tag}-team"}


def apply(cluster: K8sCluster, objs: list[dict[str, Any]]):
    return cluster.kubectl("apply", "--server-side", "--validate=strict", f"--field-manager={MANAGER}", "-f", "-",
                           input=yaml.safe_dump_all(objs))


def kubectl_as(cluster: K8sCluster, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The cluster's kubectl with another identity's kubeconfig (and nothing of the admin's)."""
    return subprocess.run([str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=120)


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def delete_namespaces(cluster: K8sCluster, names: dict[str, str]) -> None:
    for ns in names.values():
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def token_kubeconfig(cluster: K8sCluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token, as in a pod)."""
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h", check=True).stdout.strip()
    view = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json", check=True).stdout)
    c = dict(view["clusters"][0]["cluster"])
    ca_file = c.pop("certificate-authority", None)
    if ca_file and "certificate-authority-data" not in c:
        c["certificate-authority-data"] = base64.b64encode(Path(ca_file).read_bytes()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
           "clusters": [{"name": "c", "cluster": c}],
           "users": [{"name": "sa", "user": {"token": token}}],
           "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": namespace}}]}
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path
