"""The Kubernetes objects lap-tui sends, and the statuses it reads back, as plain dicts.

No client import here: these functions are tested offline against the agent-sandbox CRD
schemas, and the backend sends exactly what they build (with strict field validation).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from lap_tui.domain.sandbox import WORKSPACE, SandboxPhase, SandboxSpec, SandboxStatus

GROUP = "agents.x-k8s.io"
PLURAL = "sandboxes"
VERSIONS = ("v1beta1", "v1alpha1")  # preferred first
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "lap-tui"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
LABEL_TEAM = "lap-tui.dev/team"
LABEL_AGENT = "lap-tui.dev/agent"
LABEL_SESSION = "lap-tui.dev/session"
LABEL_CONTEXT = "lap-tui.dev/context"  # the context key's hash is in the sandbox id; this is its name
# On the pods of an agent with `sandbox.network = true`: the team's NetworkPolicy
# lap-tui-sandboxes-egress (deploy/k8s/team-default.yaml) selects only pods without it.
LABEL_NETWORK, NETWORK_OPEN = "lap-tui.dev/network", "open"
CONTAINER = "sandbox"
VOLUME = "workspace"  # the claim template's name: the PVC is "workspace-<sandbox>", the pod's volume "workspace"
DEFAULT_IMAGE = "python:3.12-slim"
DEFAULT_WORKSPACE_SIZE = "1Gi"
# The group a sandbox pod's volumes are given (kubelet chowns the workspace's root to it, setgid,
# group-writable, and adds it to the container's groups): the uid/gid of harnesses/*/Dockerfile's
# `agent` user (tests/k8s/test_sandbox_security.py holds them to one), so a root-owned cloud
# volume (EBS) is writable by the harness images. OnRootMismatch: only a fresh volume is walked.
FS_GROUP = 1001
# Not secret: the environment every sandbox starts from (lap_tui.sandbox.env.BASE_ENV's values).
PLAIN_ENV_KEYS = ("PATH", "HOME", "LANG")


def secret_name(sandbox_id: str) -> str:
    return f"{sandbox_id}-env"


def pvc_name(sandbox_id: str) -> str:
    return f"{VOLUME}-{sandbox_id}"


def labels(spec: SandboxSpec) -> dict[str, str]:
    out = {MANAGED_BY: MANAGER, LABEL_TEAM: spec.team}
    if spec.agent_id:
        out[LABEL_AGENT] = _label_value(spec.agent_id)
    if spec.session_id:
        out[LABEL_SESSION] = _label_value(spec.session_id)
    if spec.settings.network:
        out[LABEL_NETWORK] = NETWORK_OPEN
    return out


def _label_value(value: str) -> str:
    """Label values: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends (ids are hex/uuid)."""
    v = "".join(c for c in value if c.isalnum() or c in "-_.")[:63]
    return v.strip("-_.")


def sandbox_object(spec: SandboxSpec, *, namespace: str, version: str, image: str, plain_env: Mapping[str, str],
                   has_secret: bool, workspace_size: str = DEFAULT_WORKSPACE_SIZE, storage_class: str = "",
                   running: bool = True, now: datetime | None = None) -> dict[str, Any]:
    """A `Sandbox` for `spec`: one container in the workspace, its PVC from a claim template.

    Secret values never appear here: they sit in the Secret `secret_name(id)`, named by envFrom.
    """
    s = spec.settings
    lbl = labels(spec)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": s.image or image,
        # A long-lived process the commands are exec'd next to; `sleep infinity` is in coreutils.
        "command": ["sleep", "infinity"],
        "workingDir": WORKSPACE,
        "env": [{"name": k, "value": plain_env[k]} for k in PLAIN_ENV_KEYS if k in plain_env],
        "resources": {"requests": {"cpu": s.cpu, "memory": s.memory},
                      "limits": {"cpu": s.cpu, "memory": s.memory}},
        "volumeMounts": [{"name": VOLUME, "mountPath": WORKSPACE}],
    }
    if has_secret:
        container["envFrom"] = [{"secretRef": {"name": secret_name(spec.id)}}]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "automountServiceAccountToken": False,  # an agent gets no credentials to the cluster
        "securityContext": {"fsGroup": FS_GROUP, "fsGroupChangePolicy": "OnRootMismatch"},
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
    }
    claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                  "resources": {"requests": {"storage": workspace_size}}}
    if storage_class:
        claim_spec["storageClassName"] = storage_class
    body: dict[str, Any] = {
        "podTemplate": {"metadata": {"labels": dict(lbl)}, "spec": pod_spec},
        "volumeClaimTemplates": [{"metadata": {"name": VOLUME, "labels": dict(lbl)}, "spec": claim_spec}],
    }
    lifetime = getattr(s, "max_lifetime_seconds", 0) or 0
    if lifetime > 0:
        at = (now or datetime.now(timezone.utc)) + timedelta(seconds=lifetime)
        body["shutdownTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        body["shutdownPolicy"] = "Retain"
    body.update(mode_patch(version, running)["spec"])
    annotations = {}
    if spec.context_key:
        annotations["lap-tui.dev/context-key"] = spec.context_key
    meta: dict[str, Any] = {"name": spec.id, "namespace": namespace, "labels": lbl}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": f"{GROUP}/{version}", "kind": "Sandbox", "metadata": meta, "spec": body}


def mode_patch(version: str, running: bool) -> dict[str, Any]:
    """Suspend or resume: v1beta1 says so with operatingMode, v1alpha1 with replicas 0/1."""
    if version == "v1alpha1":
        return {"spec": {"replicas": 1 if running else 0}}
    return {"spec": {"operatingMode": "Running" if running else "Suspended"}}


def secret_object(spec: SandboxSpec, namespace: str, values: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret_name(spec.id), "namespace": namespace, "labels": labels(spec)},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}}


def is_running_mode(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec") or {}
    if "replicas" in spec:
        return int(spec.get("replicas") or 0) > 0
    return spec.get("operatingMode", "Running") != "Suspended"


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return c
    return None


def pod_ready(pod: Mapping[str, Any] | None) -> bool:
    """A pod commands can run in: not going away, its Ready condition true."""
    if not pod or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def restarts(pod: Mapping[str, Any] | None) -> int:
    if not pod:
        return 0
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or ())


def status_from(obj: Mapping[str, Any], pod: Mapping[str, Any] | None, *, orphan: bool = False) -> SandboxStatus:
    """What the TUI shows for a Sandbox and its pod (either may be a step behind the other)."""
    meta = obj.get("metadata") or {}
    lbl = meta.get("labels") or {}
    ready_c = condition(obj, "Ready")
    running = is_running_mode(obj)
    ready = running and bool(ready_c and ready_c.get("status") == "True") and (pod is None or pod_ready(pod))
    message = str((ready_c or {}).get("message") or "")[:200]
    reason = (ready_c or {}).get("reason") or ""
    if meta.get("deletionTimestamp"):
        phase, message = SandboxPhase.PENDING, "deleting"
    elif not running:
        phase = SandboxPhase.SUSPENDED
    elif reason in ("PodFailed", "SandboxExpired", "ReconcilerError"):
        phase = SandboxPhase.FAILED
    elif ready:
        phase = SandboxPhase.RUNNING
    else:
        phase = SandboxPhase.PENDING
    created = _iso(meta.get("creationTimestamp"))
    changed = _iso((ready_c or {}).get("lastTransitionTime")) or created
    return SandboxStatus(
        id=str(meta.get("name", "")), backend="kubernetes", team=str(lbl.get(LABEL_TEAM, "")), phase=phase,
        ready=ready and phase is SandboxPhase.RUNNING, agent_id=lbl.get(LABEL_AGENT),
        session_id=lbl.get(LABEL_SESSION),
        context_key=(meta.get("annotations") or {}).get("lap-tui.dev/context-key"),
        isolated=True, message=message, restarts=restarts(pod), created_at=created, updated_at=changed,
        suspended_at=changed if phase is SandboxPhase.SUSPENDED else None, orphan=orphan,
        node=str(((pod or {}).get("spec") or {}).get("nodeName") or ""),
        pod_phase=str(((pod or {}).get("status") or {}).get("phase") or ""))


def _iso(value: Any) -> str:
    """Kubernetes times (second precision, 'Z') in the store's fixed-width form."""
    if not value:
        return ""
    text = str(value)
    try:
        dt = datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return ""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
