"""Graceful stop for the worker (SIGTERM in a Deployment): hand turns back at a checkpoint.

The engine journals every step before taking it (write-ahead: `turn.started`/`turn.resumed`,
`model.requested`, `tool.started`). A `DrainFence` wraps the worker's store; once draining it
refuses those appends with `HandedBack`, a `LeaseLost`, so the engine does what it does when
its lease is lost: the turn stays unfinished, its driver stops and releases the lease, and the
next driver resumes it from its last checkpoint. The step already under way finishes.

After the grace period `hard()` refuses every append: a model stream stops at its next
checkpoint, and the worker cancels what still runs (a long command): the cancellation cannot
journal the turn cancelled, so the turn is handed back as after a crash (a command cut short
is reported to the model as interrupted, never run twice).
"""

from __future__ import annotations

from typing import Any

from lap_tui.domain.journal import EventKind
from lap_tui.domain.lease import LeaseLost

STEP_STARTS = frozenset({EventKind.TURN_STARTED.value, EventKind.TURN_RESUMED.value,
                         EventKind.MODEL_REQUESTED.value, EventKind.TOOL_STARTED.value})


class HandedBack(LeaseLost):
    """This worker is stopping: the turn goes back to the queue at a checkpoint."""


class DrainFence:
    """A Store that delegates everything, refusing new steps while draining."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.draining = False
        self._hard = False

    def soft(self) -> None:
        """No new step starts; the ones under way finish."""
        self.draining = True

    def hard(self) -> None:
        """Nothing more is journaled by this process's drivers."""
        self.draining = True
        self._hard = True

    async def append(self, session_id: str, kind: str, data: Any = None, **kw: Any) -> Any:
        # Only a driver's appends (they name the lease holder) are fenced: queueing and
        # cancel requests from this process are not steps.
        if kw.get("holder") and (self._hard or (self.draining and kind in STEP_STARTS)):
            raise HandedBack(f"this worker is stopping: {kind} left to the next driver")
        return await self._store.append(session_id, kind, data, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
