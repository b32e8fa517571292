"""What the App is given: settings and factories of the things that do I/O.

Widgets never construct clients. Factories run inside the app's event loop (in workers), so
heavy imports (httpx, kubernetes, asyncpg) happen after the first paint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from lap_tui.config import Settings
from lap_tui.engine.api import EngineApi
from lap_tui.store.base import Store


@dataclass
class Services:
    settings: Settings
    open_store: Callable[[], Awaitable[Store]]
    # (store) -> engine; None: watch-only (the chat shows sessions but cannot send).
    make_engine: Callable[[Store], Awaitable[EngineApi] | EngineApi] | None = None
    # (store) -> sandbox backend or None; may import kubernetes, so it runs after first paint.
    make_sandboxes: Callable[[Store], Awaitable[Any] | Any] | None = None
    # Model ids from the gateway's /v1/models; raises when unreachable.
    list_models: Callable[[], Awaitable[list[str]]] | None = None
    clock: Callable[[], float] = time.time
    state_path: Path | None = None  # None: nothing saved (tests)
    deterministic: bool = False  # snapshots: no cursor blink, no timers that change the screen
    # Opened before the app started (launch.py), with its agents; None: the app opens the store.
    store: Store | None = None
    agents: list[Any] | None = None
    # `--session ID`: (session, its last page of events, whether older ones exist), read then too.
    first_chat: tuple[Any, list[Any], bool] | None = None
