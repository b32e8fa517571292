"""Sessions: one conversation with one agent, with running token and cost totals."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from lap_tui.domain.names import validate_label


class SessionStatus(str, Enum):
    """Mirrors the session's latest turn, so lists show it without reading the journal."""

    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class Session:
    id: str
    agent_id: str
    title: str = ""
    status: SessionStatus = SessionStatus.IDLE
    context_key: str | None = None
    sandbox_ref: str | None = None
    harness_session_id: str | None = None
    created_at: str = ""
    updated_at: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    last_seq: int = 0
    # Denormalised from the agent for listings; not stored on the row.
    agent_name: str = ""
    team: str = ""

    def validate(self) -> Session:
        if self.context_key is not None:
            validate_label("context", self.context_key)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "agent_id": self.agent_id, "agent": self.agent_name, "team": self.team,
            "title": self.title, "status": self.status.value, "context_key": self.context_key,
            "sandbox_ref": self.sandbox_ref, "harness_session_id": self.harness_session_id,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd, "last_seq": self.last_seq,
        }
