"""A watch-only stand-in used when the engine could not be built (the error is shown): follows the
journal, sends nothing."""

from __future__ import annotations

from typing import AsyncIterator

from lap_tui.domain.errors import LapError
from lap_tui.domain.journal import JournalEvent
from lap_tui.engine.api import LiveText
from lap_tui.store.base import Store


class EngineUnavailable(LapError):
    pass


class JournalObserver:
    def __init__(self, store: Store, reason: str = "the engine could not be started (see the error shown at start)") -> None:
        self.store = store
        self.reason = reason

    async def send(self, session_id: str, text: str) -> str:
        raise EngineUnavailable(self.reason)

    async def cancel(self, turn_id: str) -> None:
        raise EngineUnavailable(self.reason)

    async def retry(self, turn_id: str) -> str:
        raise EngineUnavailable(self.reason)

    async def watch(self, session_id: str, *, after_seq: int = 0) -> AsyncIterator[JournalEvent | LiveText]:
        async for ev in self.store.follow(session_id, after_seq=after_seq):
            yield ev
