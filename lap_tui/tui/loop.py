"""Two ways to keep the app's event loop free for keys and frames: wait for a refresh, and
import heavy code in a thread (the interpreter still switches back to the app every few
milliseconds, where an import on the loop holds it for its whole 50-100 ms)."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import Any


async def import_in_thread(module: str) -> ModuleType:
    return await asyncio.to_thread(importlib.import_module, module)


async def after_refresh(node: Any) -> None:
    """Return once the screen has refreshed (`node` is any widget, screen or the app)."""
    done = asyncio.Event()
    node.call_after_refresh(done.set)
    await done.wait()
