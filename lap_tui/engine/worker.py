"""The headless worker: drives queued and unfinished turns with no terminal open."""

from __future__ import annotations

import asyncio
import logging

from lap_tui.domain.errors import StoreError
from lap_tui.engine.engine import Engine

log = logging.getLogger(__name__)

IDLE_CHECK_EVERY = 30.0  # seconds between checks for sandboxes to suspend


async def run_worker(engine: Engine, *, once: bool = False, poll_interval: float = 0.5,
                     max_sessions: int = 8, standby: float = 0.0) -> int:
    """Drive every session with unfinished turns. `once`: until none is left that this
    process can take (sessions another live process drives are left to it), then return.
    `standby` (seconds): take only turns left alone that long — how the TUI runs turns
    when no worker does, without racing a worker that is there. Returns how many sessions
    it drove."""
    driven = 0
    running: dict[str, asyncio.Task[bool]] = {}
    refused: set[str] = set()
    last_idle_check = 0.0
    store_down = 0
    loop = asyncio.get_running_loop()
    try:
        while True:
            for sid, task in list(running.items()):
                if task.done():
                    del running[sid]
                    if task.cancelled() or task.exception() is not None:
                        log.error("driving %s failed: %r", sid, None if task.cancelled() else task.exception())
                    elif task.result():
                        driven += 1
                    if once:  # drained, refused (another driver), or stuck: not again this run
                        refused.add(sid)
            try:
                found = await engine.unfinished_sessions(idle_for=standby)
                store_down = 0
            except StoreError as exc:  # e.g. the database restarts: wait for it, then carry on
                store_down += 1
                log.warning("the store is unavailable (%s); retrying", exc)
                await asyncio.sleep(min(poll_interval * 2 ** store_down, 10.0))
                continue
            pending = [s for s in found if s not in running]
            if once:
                todo = [s for s in pending if s not in refused]
                if not todo and not running:
                    return driven
            else:
                todo = pending
            for sid in todo[: max(0, max_sessions - len(running))]:
                running[sid] = engine.start(sid)
            if loop.time() - last_idle_check > IDLE_CHECK_EVERY and not once:
                last_idle_check = loop.time()
                try:
                    await engine.sandboxes.suspend_idle()
                except Exception as exc:  # a broken backend must not stop turns from running
                    log.warning("suspending idle sandboxes failed: %s", exc)
            if running:
                await asyncio.wait(running.values(), timeout=poll_interval)
            else:
                await asyncio.sleep(poll_interval)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
