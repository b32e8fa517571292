"""Sandboxes as plain data: what to run in (spec), what it is doing (status), what a command did.

No I/O here. Backends (lap_tui.sandbox) turn specs into sandboxes and report statuses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import LapError
from lap_tui.domain.names import MAX_LABEL, label_problem
from lap_tui.domain.session import Session

SESSION_PREFIX = "s-"
SESSION_ID_CHARS = 12
WORKSPACE = "/workspace"  # where every backend mounts the sandbox's persistent files


class SandboxUnavailable(LapError):
    """Isolation cannot be had on this host (bwrap missing, user namespaces off, ...)."""

    exit_code = 6


class SandboxError(LapError):
    """A sandbox operation failed for a reason the user can act on."""

    exit_code = 7


class SandboxPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


def check_sandbox_id(value: object) -> str:
    """`value` if it is a sandbox id this program could have made (a DNS-1123 label), else SandboxError.

    Ids come back from a store other processes write (a teammate's, a bug's): they become host
    paths, cgroup names and kill targets only after this check, wherever they come from.
    """
    problem = label_problem("sandbox", value) if isinstance(value, str) else "sandbox id is not a string"
    if problem is not None:
        raise SandboxError(f"refusing sandbox id {str(value)[:80]!r}: not a name lap-tui makes ({problem})",
                           "a row nobody made through lap-tui: `lap-tui sandboxes delete` removes the row only")
    return value  # type: ignore[return-value]


def sandbox_id_problem(value: object) -> str | None:
    """The same check as a message, or None when `value` is a valid sandbox id."""
    try:
        check_sandbox_id(value)
    except SandboxError as exc:
        return exc.message
    return None


def session_sandbox_id(session_id: str) -> str:
    return SESSION_PREFIX + session_id[:SESSION_ID_CHARS]


def context_sandbox_id(team: str, context_key: str) -> str:
    """`team-context-hash`: stable, a DNS-1123 label, never equal for two (team, context) pairs.

    The hash keeps ("a-b", "c") and ("a", "b-c") apart and bounds the length; it also keeps
    context ids from ever looking like session ids ("s-" + 12 hex digits, one dash).
    """
    digest = hashlib.sha256(f"{team}\0{context_key}".encode()).hexdigest()[:8]
    base = f"{team}-{context_key}"[: MAX_LABEL - 9].rstrip("-")
    return f"{base}-{digest}"


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a backend needs to create (or find) one sandbox. Holds no secret values."""

    id: str
    team: str
    settings: SandboxSettings = field(default_factory=SandboxSettings)
    agent_id: str | None = None
    session_id: str | None = None
    context_key: str | None = None

    @classmethod
    def for_session(cls, agent: Agent, session: Session) -> SandboxSpec:
        """Scope decides: one sandbox per session, or one per (team, context)."""
        if agent.sandbox.scope == "context" and session.context_key:
            return cls(id=context_sandbox_id(agent.team, session.context_key), team=agent.team,
                       settings=agent.sandbox, agent_id=agent.id, session_id=None,
                       context_key=session.context_key)
        return cls(id=session_sandbox_id(session.id), team=agent.team, settings=agent.sandbox,
                   agent_id=agent.id, session_id=session.id)


@dataclass(frozen=True)
class SandboxStatus:
    id: str
    backend: str
    team: str
    phase: SandboxPhase
    ready: bool = False
    agent_id: str | None = None
    session_id: str | None = None
    context_key: str | None = None
    isolated: bool = True
    message: str = ""
    restarts: int = 0
    created_at: str = ""
    updated_at: str = ""
    last_used_at: str | None = None
    suspended_at: str | None = None
    orphan: bool = False  # lap-tui's labels, but no session or record of it in the store
    node: str = ""  # Kubernetes: the node its pod is scheduled on ("" elsewhere, or with no pod)
    pod_phase: str = ""  # Kubernetes: the pod's own phase (Pending, Running, ...; "" with no pod)
    # Kubernetes warm pools: "pooled" (waiting in an agent's pool), "claimed" (given to a session
    # through a SandboxClaim), "" for a sandbox made for its session or context.
    origin: str = ""
    pool: str = ""  # the warm pool (and template) it came from
    claim: str = ""  # the SandboxClaim that holds it

    @property
    def warning(self) -> str | None:
        """Shown next to the sandbox wherever it appears."""
        if not self.isolated:
            return "UNISOLATED: commands run as plain host processes"
        if self.orphan:
            return "ORPHAN: no session in the store owns it (delete it with `lap-tui sandboxes delete`)"
        return None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["phase"] = self.phase.value
        d["warning"] = self.warning
        return d


@dataclass(frozen=True)
class SandboxEvent:
    """One change seen by `watch()`: type is added, modified or deleted."""

    type: str
    status: SandboxStatus


@dataclass(frozen=True)
class ExecResult:
    exit_code: int  # a signal N shows as 128 + N, as shells do
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    killed: str | None = None  # why lap-tui killed it: "timeout", "cancelled", "suspended", "deleted"
    duration_s: float = 0.0

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


@dataclass(frozen=True)
class DirEntry:
    name: str
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int
    mtime: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size, "mtime": self.mtime}
