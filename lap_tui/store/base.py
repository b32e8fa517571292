"""The store's contract. Both implementations pass the same contract test suite."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

from lap_tui.domain.agent import Agent
from lap_tui.domain.journal import JournalEvent, Turn, TurnStatus
from lap_tui.domain.lease import Lease
from lap_tui.domain.session import Session, SessionStatus


@dataclass(frozen=True)
class MigrationReport:
    before: int
    after: int
    applied: tuple[str, ...]


@dataclass(frozen=True)
class SandboxRecord:
    """A sandbox as its backend last reported it."""

    id: str
    backend: str
    team: str
    phase: str
    agent_id: str | None = None
    session_id: str | None = None
    context_key: str | None = None
    ready: bool = False
    restarts: int = 0
    message: str = ""
    created_at: str = ""
    updated_at: str = ""
    last_used_at: str | None = None
    suspended_at: str | None = None
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Store(ABC):
    """Async access to everything lap-tui keeps. Safe for many processes at once."""

    kind: str  # "sqlite" | "postgres"
    display_url: str  # for messages: never holds a password

    @abstractmethod
    async def open(self) -> None: ...
    @abstractmethod
    async def close(self) -> None: ...
    @abstractmethod
    async def migrate(self) -> MigrationReport:
        """Apply pending migrations; safe when several processes do it at once."""
    @abstractmethod
    async def check_schema(self) -> int:
        """The schema version; StoreError if it is newer than this code or not yet created."""

    # Agents
    @abstractmethod
    async def create_agent(self, agent: Agent) -> Agent: ...
    @abstractmethod
    async def get_agent(self, name: str, team: str) -> Agent: ...
    @abstractmethod
    async def get_agent_by_id(self, agent_id: str) -> Agent: ...
    @abstractmethod
    async def list_agents(self, team: str | None = None, *, limit: int = 1000) -> list[Agent]: ...
    @abstractmethod
    async def update_agent(self, agent: Agent) -> Agent: ...
    @abstractmethod
    async def delete_agent(self, agent_id: str) -> int:
        """Delete the agent with its sessions and journals; returns how many sessions went."""
    @abstractmethod
    async def count_sessions(self, agent_id: str) -> int: ...

    # Sessions
    @abstractmethod
    async def create_session(self, session: Session) -> Session: ...
    @abstractmethod
    async def get_session(self, id_or_prefix: str) -> Session: ...
    @abstractmethod
    async def list_sessions(self, agent_id: str | None = None, *, limit: int = 100,
                            before: tuple[str, str] | None = None) -> list[Session]:
        """Most recently active first; `before` is the (updated_at, id) of the last row seen."""
    @abstractmethod
    async def update_session(self, session_id: str, **fields: Any) -> Session: ...
    @abstractmethod
    async def set_session_status(self, session_id: str, status: SessionStatus) -> None: ...
    @abstractmethod
    async def delete_session(self, session_id: str) -> None: ...

    # Turns
    @abstractmethod
    async def create_turn(self, turn: Turn) -> Turn: ...
    @abstractmethod
    async def get_turn(self, turn_id: str) -> Turn: ...
    @abstractmethod
    async def list_turns(self, session_id: str) -> list[Turn]: ...
    @abstractmethod
    async def find_turns(self, statuses: tuple[TurnStatus, ...], *, limit: int = 100) -> list[Turn]: ...
    @abstractmethod
    async def update_turn(self, turn_id: str, *, status: TurnStatus | None = None, error: str | None = None,
                          add_prompt_tokens: int = 0, add_completion_tokens: int = 0,
                          add_cost_usd: float = 0.0) -> Turn:
        """Change a turn; token and cost additions go to its session's totals too."""

    # Journal
    @abstractmethod
    async def append(self, session_id: str, kind: str, data: dict[str, Any] | None = None, *,
                     turn_id: str | None = None, holder: str | None = None,
                     event_id: str | None = None) -> JournalEvent:
        """Append one event in its own transaction; O(1) whatever the journal's length.

        With `holder`, the append succeeds only while `holder` holds the session's lease
        (LeaseLost otherwise): a driver that lost its lease cannot write. `event_id` (a new id
        by default) is unique in the journal: appending it again returns the event already
        written, so a retry after a lost commit reply neither duplicates nor drops it.
        """
    @abstractmethod
    async def read_events(self, session_id: str, *, after_seq: int = 0, limit: int | None = None,
                          turn_id: str | None = None) -> list[JournalEvent]: ...
    @abstractmethod
    async def last_events(self, session_id: str, n: int = 200, *,
                          before_seq: int | None = None) -> list[JournalEvent]:
        """The last `n` events (before `before_seq` to page backwards), oldest first."""
    @abstractmethod
    async def last_seq(self, session_id: str) -> int: ...
    @abstractmethod
    def follow(self, session_id: str, *, after_seq: int = 0,
               poll_interval: float = 0.1) -> AsyncIterator[JournalEvent]:
        """New events as they are appended, by any process, until the caller stops."""

    # Leases
    @abstractmethod
    async def acquire_lease(self, session_id: str, holder: str, ttl: float, *, now: float | None = None,
                            steal_from: str | None = None) -> bool:
        """Take the lease if free, expired, ours, or held by `steal_from` (known dead)."""
    @abstractmethod
    async def renew_lease(self, session_id: str, holder: str, ttl: float, *, now: float | None = None) -> bool: ...
    @abstractmethod
    async def release_lease(self, session_id: str, holder: str) -> None: ...
    @abstractmethod
    async def get_lease(self, session_id: str) -> Lease | None: ...

    # Sandboxes
    @abstractmethod
    async def put_sandbox(self, record: SandboxRecord) -> SandboxRecord: ...
    @abstractmethod
    async def update_sandbox(self, sandbox_id: str, *, phase_was: str, **fields: Any) -> SandboxRecord | None:
        """Set `fields` (columns of SandboxRecord) of an existing sandbox's row, only while its
        phase is still `phase_was` (compare-and-set): a write from a stale read never brings back a
        sandbox another process deleted nor undoes its phase change. The row as written; None when
        it is gone or its phase moved."""
    @abstractmethod
    async def touch_sandbox(self, sandbox_id: str, at: str) -> bool:
        """Move an existing sandbox's last-used time forward to `at`; nothing else of the row
        changes and no row is made. False when nothing was touched (no such row, or a later time)."""
    @abstractmethod
    async def get_sandbox(self, sandbox_id: str) -> SandboxRecord | None: ...
    @abstractmethod
    async def list_sandboxes(self, *, backend: str | None = None) -> list[SandboxRecord]: ...
    @abstractmethod
    async def delete_sandbox(self, sandbox_id: str) -> None: ...
    @abstractmethod
    async def orphan_sandbox_ids(self) -> set[str]:
        """Sandboxes no session uses any more (their session, or every session of their
        context, was deleted while they were kept): listed as orphans."""
    @abstractmethod
    async def sandboxes_left_unused(self, session_ids: Sequence[str]) -> list[str]:
        """The sandboxes that deleting these sessions leaves with no session: a session's own
        sandbox, and a context sandbox once no other session of the context remains."""

    # Relay tokens (CLI harnesses reach the gateway with these; only hashes are stored)
    @abstractmethod
    async def put_relay_token(self, token_hash: str, session_id: str) -> None:
        """Record a session's token (one per session: a new one replaces the old)."""
    @abstractmethod
    async def relay_grant(self, token_hash: str) -> tuple[str, str | None] | None:
        """(session id, turn id to charge) for a live token; None when unknown or revoked."""
    @abstractmethod
    async def set_relay_turn(self, session_id: str, turn_id: str | None) -> None: ...
    @abstractmethod
    async def revoke_relay_tokens(self, session_id: str) -> int: ...
