"""Sandboxes on Kubernetes: kubernetes-sigs/agent-sandbox `Sandbox` objects (docs/KUBERNETES.md).

Importing this package loads no Kubernetes client; `kubernetes.aio` is imported on first use.
"""

from lap_tui.sandbox.k8s.backend import KubernetesBackend, namespace_for

__all__ = ["KubernetesBackend", "namespace_for"]
