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
    """The cluster backend has not landed yet; until it does, "auto" means local."""
    return False


def backend_for(settings: Settings, store: Store, kind: str = "auto", **options: object) -> SandboxBackend:
    """The backend for an agent's `sandbox.backend` setting ("auto", "local" or "kubernetes")."""
    if kind == "auto":
        kind = "kubernetes" if kubernetes_configured(settings) else "local"
    if kind == "local":
        from lap_tui.sandbox.local import LocalBackend

        return LocalBackend(store, settings, **options)  # type: ignore[arg-type]
    from lap_tui.domain.errors import ConfigError

    raise ConfigError(f"sandbox backend {kind!r} is not available yet", "use the local backend (auto or local)")


async def ensure_for_session(backend: SandboxBackend, store: Store, agent: Agent,
                             session: Session) -> SandboxStatus:
    spec = SandboxSpec.for_session(agent, session)
    status = await backend.ensure(spec)
    if session.sandbox_ref != spec.id:
        await store.update_session(session.id, sandbox_ref=spec.id)
    return status


__all__ = ["SandboxSpec", "SandboxStatus", "backend_for", "ensure_for_session", "kubernetes_configured"]
