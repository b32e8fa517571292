"""The journal's vocabulary: events, turns, tool calls and their state machines.

One shape for everything that reads or writes the journal (engine, harnesses, TUI,
`lap-tui journal --json`): {"seq", "session_id", "turn_id", "kind", "at", "data"}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lap_tui.domain.errors import InvalidTransition


class EventKind(str, Enum):
    TURN_QUEUED = "turn.queued"
    TURN_STARTED = "turn.started"
    TURN_RESUMED = "turn.resumed"
    USER_MESSAGE = "user.message"
    MODEL_REQUESTED = "model.requested"  # write-ahead record of a model call about to be made
    MODEL_DELTA = "model.delta"  # checkpoint: the streamed text since the previous checkpoint
    MODEL_MESSAGE = "model.message"  # a whole model response: text, tool calls, usage, cost
    TOOL_STARTED = "tool.started"
    TOOL_FINISHED = "tool.finished"
    TOOL_INTERRUPTED = "tool.interrupted"
    HARNESS_EVENT = "harness.event"
    SANDBOX_EVENT = "sandbox.event"
    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"
    TURN_CANCELLED = "turn.cancelled"
    CANCEL_REQUESTED = "turn.cancel_requested"  # by a process that does not drive the turn


TERMINAL_KINDS = frozenset({EventKind.TURN_COMPLETED, EventKind.TURN_FAILED, EventKind.TURN_CANCELLED})


@dataclass(frozen=True)
class JournalEvent:
    seq: int
    session_id: str
    turn_id: str | None
    kind: str
    at: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "session_id": self.session_id, "turn_id": self.turn_id,
                "kind": self.kind, "at": self.at, "data": self.data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)


class TurnStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # its driver died; the next driver resumes it
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TurnStatus.COMPLETED, TurnStatus.FAILED, TurnStatus.CANCELLED)


_TURN_MOVES: dict[TurnStatus, frozenset[TurnStatus]] = {
    TurnStatus.QUEUED: frozenset({TurnStatus.RUNNING, TurnStatus.CANCELLED}),
    TurnStatus.RUNNING: frozenset({TurnStatus.COMPLETED, TurnStatus.FAILED, TurnStatus.CANCELLED,
                                   TurnStatus.INTERRUPTED}),
    TurnStatus.INTERRUPTED: frozenset({TurnStatus.RUNNING, TurnStatus.FAILED, TurnStatus.CANCELLED}),
    TurnStatus.FAILED: frozenset({TurnStatus.QUEUED}),  # retry from the last checkpoint
    TurnStatus.COMPLETED: frozenset(),
    TurnStatus.CANCELLED: frozenset(),
}


def advance_turn(current: TurnStatus, target: TurnStatus) -> TurnStatus:
    if target not in _TURN_MOVES[current]:
        raise InvalidTransition(f"a {current.value} turn cannot become {target.value}")
    return target


@dataclass(frozen=True)
class Turn:
    id: str
    session_id: str
    status: TurnStatus = TurnStatus.QUEUED
    created_at: str = ""
    updated_at: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "session_id": self.session_id, "status": self.status.value,
                "created_at": self.created_at, "updated_at": self.updated_at,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_usd, "error": self.error}


class ToolCallState(str, Enum):
    REQUESTED = "requested"  # the model asked for it; not run yet
    STARTED = "started"  # journaled as started; running (or its driver died)
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


_TOOL_MOVES: dict[ToolCallState, frozenset[ToolCallState]] = {
    ToolCallState.REQUESTED: frozenset({ToolCallState.STARTED, ToolCallState.INTERRUPTED}),
    ToolCallState.STARTED: frozenset({ToolCallState.FINISHED, ToolCallState.INTERRUPTED}),
    ToolCallState.FINISHED: frozenset(),
    ToolCallState.INTERRUPTED: frozenset(),
}


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model sent it
    state: ToolCallState = ToolCallState.REQUESTED
    output: str | None = None
    exit_code: int | None = None
    truncated: bool = False
    error: str | None = None

    def move(self, target: ToolCallState) -> None:
        if target not in _TOOL_MOVES[self.state]:
            raise InvalidTransition(f"tool call {self.id} is {self.state.value}, cannot become {target.value}")
        self.state = target
