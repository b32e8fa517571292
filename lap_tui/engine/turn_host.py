"""What a harness's turn driver (engine/cli_turn.py) may use of the engine that runs it.

A Protocol, so the driver depends on this face and not on the Engine class: the engine picks
the driver, the driver never reaches back into the engine's insides. Everything a turn writes
goes through `journal` (stamped with the turn and this process's lease), live text through
`publish`, and every text from the CLI through `mask(turn)` first.
"""

from __future__ import annotations

from typing import Any, Protocol

from lap_tui.domain.journal import EventKind, JournalEvent, Turn, TurnStatus
from lap_tui.domain.secrets import Redactor


class TurnHost(Protocol):
    settings: Any
    store: Any
    sandboxes: Any

    @property
    def closing(self) -> bool:
        """lap-tui is closing: a CLI turn detaches instead of waiting for its CLI."""

    async def journal(self, turn: Turn, kind: EventKind, data: dict[str, Any]) -> JournalEvent:
        """Append one event of the turn, as the session's lease holder."""

    def publish(self, session_id: str, item: Any) -> None:
        """Live text to the terminals watching the session (not journaled)."""

    def mask(self, turn: Turn) -> Redactor:
        """The settings' secrets and the values of the env vars the turn's agent names."""

    async def session_after(self, turn: Turn, status: TurnStatus) -> None:
        """The session's status and totals once the turn has ended with `status`."""
