"""The headless worker: drives queued and unfinished turns with no terminal open."""

from __future__ import annotations

import asyncio
import logging
import random

from lap_tui.domain.errors import StoreError
from lap_tui.engine.drain import DrainFence
from lap_tui.engine.engine import Engine
from lap_tui.engine.health import WorkerHealth

log = logging.getLogger(__name__)

IDLE_CHECK_EVERY = 30.0  # seconds between checks for sandboxes to suspend
BUSY_BACKOFF = 2.0  # seconds before trying again a session another live driver held


async def run_worker(engine: Engine, *, once: bool = False, poll_interval: float = 0.5,
                     max_sessions: int = 8, standby: float = 0.0, health: WorkerHealth | None = None,
                     stop: asyncio.Event | None = None, fence: DrainFence | None = None,
                     grace: float = 20.0) -> int:
    """Drive every session with unfinished turns. `once`: until none is left that this
    process can take (sessions another live process drives are left to it), then return.
    `standby` (seconds): take only turns left alone that long — how the TUI runs turns
    when no worker does, without racing a worker that is there. `health` hears from each
    round of the loop (the probes). Once `stop` is set (SIGTERM) no new session is taken;
    with the engine's store wrapped in `fence`, turns under way are handed back at their
    next checkpoint, and what still runs after `grace` seconds is cut short and handed
    back (drain.py); their leases are released. Returns how many sessions it drove."""
    driven = 0
    running: dict[str, asyncio.Task[bool]] = {}
    refused: set[str] = set()
    busy: dict[str, float] = {}  # session -> until when to leave it to the live driver that refused us
    last_idle_check = 0.0
    store_down = 0
    loop = asyncio.get_running_loop()
    try:
        while True:
            if stop is not None and stop.is_set():
                await _drain(engine, running, fence, health, grace)
                return driven + sum(1 for t in running.values()
                                    if t.done() and not t.cancelled() and t.exception() is None and t.result())
            for sid, task in list(running.items()):
                if task.done():
                    del running[sid]
                    if task.cancelled() or task.exception() is not None:
                        log.error("driving %s failed: %r", sid, None if task.cancelled() else task.exception())
                    elif task.result():
                        driven += 1
                    else:  # another live driver holds it and drives all its turns: not every poll
                        busy[sid] = loop.time() + BUSY_BACKOFF
                    if once:  # drained, refused (another driver), or stuck: not again this run
                        refused.add(sid)
            try:
                found = await engine.unfinished_sessions(idle_for=standby)
                store_down = 0
                if health is not None:
                    health.beat(store_ok=True)
            except StoreError as exc:  # e.g. the database restarts: wait for it, then carry on
                store_down += 1
                if health is not None:
                    health.beat(store_ok=False, error=engine.settings.redactor(str(exc)))  # probes are no place for secrets
                log.warning("the store is unavailable (%s); retrying", exc)
                await asyncio.sleep(min(poll_interval * 2 ** store_down, 10.0))
                continue
            pending = [s for s in found if s not in running]
            if once:
                todo = [s for s in pending if s not in refused]
                if not todo and not running:
                    return driven
            else:
                now = loop.time()
                todo = [s for s in pending if busy.get(s, 0.0) <= now]
                busy = {s: t for s, t in busy.items() if t > now}
            # Several workers list the same sessions in the same order: each tries them in its own
            # order, so they do not all race for the oldest few (measured: bench_workers.py).
            random.shuffle(todo)
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


async def _drain(engine: Engine, running: dict[str, asyncio.Task[bool]], fence: DrainFence | None,
                 health: WorkerHealth | None, grace: float) -> None:
    """Stop taking turns; let the steps under way finish (or cut them short after `grace`)."""
    if health is not None:
        health.draining = True
    if fence is not None:
        fence.soft()
    log.info("stopping: %d session(s) hand back at their next checkpoint (grace %.0f s)", len(running), grace)
    if running:
        _, pending = await asyncio.wait(running.values(), timeout=grace)
        if pending and fence is not None:
            log.warning("grace period over: cutting short %d session(s); they resume elsewhere", len(pending))
            fence.hard()
            for task in list(engine._turn_tasks.values()):  # the turns themselves, not their drivers
                task.cancel()
            await asyncio.wait(pending, timeout=10)
