"""Sandboxes: where agents' commands run. One interface, a backend per kind of host.

`backend_for` picks the backend; `ensure_for_session` gives a session its sandbox (by the
agent's scope) and records the sandbox on the session. Backends are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lap_tui.domain.sandbox import SandboxSpec, SandboxStatus

if TYPE_CHECKING:
    from lap_tui.config import Settings
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.session import Session
    from lap_tui.sandbox.base import SandboxBackend
    from lap_tui.store.base import Store


def kubernetes_configured(settings: Settings) -> bool:
    """Whether "auto" means the cluster: sandbox_backend says so, or a kube context, kubeconfig
    or namespace map is set (an in-cluster lap-tui sets sandbox_backend = "kubernetes")."""
    kind = _default_kind(settings)
    if kind != "auto":
        return kind == "kubernetes"
    return any(_get(settings, k) for k in ("kube_context", "kubeconfig", "kube_namespaces"))


def backend_for(settings: Settings, store: Store, kind: str = "auto", **options: object) -> SandboxBackend:
    """The backend for an agent's `sandbox.backend` setting ("auto", "local" or "kubernetes").

    "auto" follows the config's `sandbox_backend` (itself "auto" by default: kubernetes when
    configured, else local). The Kubernetes client is imported only here, on first use.
    """
    from lap_tui.domain.errors import ConfigError

    if kind == "auto":
        if not kubernetes_configured(settings):
            kind = "local"
        else:  # the cluster by default; agents that say "local" still get bubblewrap
            from lap_tui.sandbox.router import Backends

            return Backends(store, "kubernetes", lambda k: backend_for(settings, store, k, **(
                options if k == "kubernetes" else {})))
    if kind == "local":
        from lap_tui.sandbox.local import LocalBackend

        return LocalBackend(store, settings, **options)  # type: ignore[arg-type]
    if kind == "kubernetes":
        from lap_tui.sandbox.k8s import KubernetesBackend

        return KubernetesBackend(store, settings, **options)  # type: ignore[arg-type]
    raise ConfigError(f"sandbox backend {kind!r} is unknown", "use auto, local or kubernetes")


def _default_kind(settings: Settings) -> str:
    from lap_tui.domain.agent import SANDBOX_BACKENDS
    from lap_tui.domain.errors import ConfigError

    kind = _get(settings, "sandbox_backend") or "auto"
    if kind not in SANDBOX_BACKENDS:
        raise ConfigError(f"sandbox_backend = {kind!r} is unknown", "use auto, local or kubernetes")
    return kind


def _get(settings: Settings, name: str) -> object:
    try:
        return settings[name]
    except KeyError:  # settings built by hand (tests) may lack the newer keys
        return None


async def ensure_for_session(backend: SandboxBackend, store: Store, agent: Agent,
                             session: Session) -> SandboxStatus:
    spec = SandboxSpec.for_session(agent, session)
    from lap_tui.sandbox.router import Backends

    wanted = agent.sandbox.backend
    if wanted != "auto" and backend.name != wanted and not isinstance(backend, Backends):  # the router picks
        from lap_tui.domain.errors import ConfigError

        raise ConfigError(f"agent {agent.name} wants {wanted} sandboxes, but this lap-tui uses {backend.name} ones",
                          "set kube_context (LAP_KUBE_CONTEXT) for a cluster, or change the agent's sandbox backend"
                          if wanted == "kubernetes" else "change the agent's sandbox backend to auto")
    status = await backend.ensure(spec)
    ref = status.id or spec.id  # a sandbox claimed from a warm pool keeps the name the pool gave it
    if session.sandbox_ref != ref:
        await store.update_session(session.id, sandbox_ref=ref)
    return status


__all__ = ["SandboxSpec", "SandboxStatus", "backend_for", "ensure_for_session", "kubernetes_configured"]
