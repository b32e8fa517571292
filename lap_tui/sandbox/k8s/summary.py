"""What `lap-tui config` says about the cluster: the context and namespace in force (no client import)."""

from __future__ import annotations

import os
from typing import Any

from lap_tui.config import Settings


def kube_summary(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """{backend, kubeconfig, context, namespace, team}; the context read from the kubeconfig when unset."""
    from lap_tui.sandbox import kubernetes_configured
    from lap_tui.sandbox.k8s.backend import namespace_for

    env = os.environ if environ is None else environ
    path = settings["kubeconfig"] or env.get("KUBECONFIG", "") or os.path.expanduser("~/.kube/config")
    context = settings["kube_context"]
    if not context:
        context = _current_context(path.split(os.pathsep)[0]) or ("in-cluster" if "KUBERNETES_SERVICE_HOST" in env
                                                                   else "")
    team = settings["team"]
    try:
        namespace = namespace_for(settings, team)
    except Exception as exc:  # noqa: BLE001 - shown, not raised: `config` must always answer
        namespace = f"(invalid: {exc})"
    return {"backend": "kubernetes" if kubernetes_configured(settings) else "local", "kubeconfig": path,
            "context": context or "(none)", "team": team, "namespace": namespace}


def _current_context(path: str) -> str:
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        return str(data.get("current-context") or "")
    except (OSError, ValueError, AttributeError):
        return ""
    except Exception:  # noqa: BLE001 - a malformed kubeconfig: say nothing here, the backend will say why
        return ""
