"""What the UI and the CLI need from the engine; the engine implements it.

The journal is the source of truth: observers read history with `Store.last_events` and
follow new events with `watch`. Streamed text reaches observers in the driving process
chunk by chunk as `LiveText`; other processes see the `model.delta` checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Protocol

from lap_tui.domain.journal import JournalEvent


@dataclass(frozen=True)
class LiveText:
    """A chunk of model text as it streams; not journaled chunk by chunk."""

    session_id: str
    turn_id: str
    text: str


class EngineApi(Protocol):
    async def send(self, session_id: str, text: str) -> str:
        """Queue a turn with the user's message and start it; returns the turn id."""

    async def cancel(self, turn_id: str) -> None:
        """Cancel a queued or running turn (journaled `turn.cancelled`)."""

    async def retry(self, turn_id: str) -> str:
        """Re-run a failed turn from its last checkpoint; returns the turn id."""

    def watch(self, session_id: str, *, after_seq: int = 0) -> AsyncIterator[JournalEvent | LiveText]:
        """Journal events after `after_seq` (from any process) and live text of local turns."""
