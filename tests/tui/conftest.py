"""TUI fixtures: the real App on a real SQLite store, with injected services.

Snapshots run the app in pytest-textual-snapshot's own event loop, so the app opens its store
itself from a URL; seeding happens beforehand with fixed timestamps and ids, and the app's
clock is frozen.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.clock import epoch_from_iso
from lap_tui.domain.journal import Turn, TurnStatus
from lap_tui.domain.session import Session, SessionStatus
from lap_tui.store import open_store
from lap_tui.store.base import SandboxRecord
from lap_tui.tui.services import Services

FROZEN = "2026-01-15T12:00:00.000000Z"
NOW = epoch_from_iso(FROZEN) + 3600 * 3  # the app's clock: three hours after the seeds


def tui_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9"}
    env.update(extra)
    return env


def make_services(tmp_path: Path, *, environ: dict[str, str] | None = None, engine: Callable | None = None,
                  sandboxes: Any = None, models: list[str] | None = None, keys: dict[str, str] | None = None,
                  deterministic: bool = True, save_state: bool = False) -> Services:
    env = environ or tui_environ(tmp_path)
    if keys is not None:
        cfg = Path(env["XDG_CONFIG_HOME"]) / "lap-tui" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text("[keys]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in keys.items()))
    settings = load_settings(env, cwd=tmp_path)

    async def open_() -> Any:
        return await open_store(settings.database_url)

    async def list_models() -> list[str]:
        if models is None:
            raise ConnectionError("gateway unreachable")
        return list(models)

    from lap_tui.tui.state import state_path

    def make_sandboxes(store: Any) -> Any:
        if hasattr(sandboxes, "store"):
            sandboxes.store = store
        return sandboxes

    return Services(settings=settings, open_store=open_, make_engine=engine,
                    make_sandboxes=make_sandboxes if sandboxes is not None else None,
                    list_models=list_models, clock=lambda: NOW,
                    state_path=state_path(settings.state_dir) if save_state else None,
                    deterministic=deterministic)


@contextmanager
def frozen_store_clock(monkeypatch: pytest.MonkeyPatch):
    """Rows written while seeding get fixed timestamps (so ages on screen never change)."""
    import lap_tui.store.sql as sql

    monkeypatch.setattr(sql, "now_iso", lambda: FROZEN)
    yield


def seed(services: Services, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(store)` on the app's database in a loop of its own (before the app runs)."""
    async def go() -> Any:
        store = await services.open_store()
        try:
            return await fn(store)
        finally:
            await store.close()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    # Inside an async test: a loop of its own, in a thread.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


AGENT_ID = "a0000000000000000000000000000001"
SESSION_ID = "5e550000000000000000000000000001"
SESSION_2 = "5e5b0000000000000000000000000002"  # a short id (5e5b0000) of its own: a wrong id column shows


async def seed_basic(store) -> None:
    await store.create_agent(Agent(id=AGENT_ID, name="code-reviewer", team="platform", model="gpt-4o-mini",
                                   system_prompt="Review code.", sandbox=SandboxSettings(env=("GH_TOKEN",))))
    await store.create_agent(Agent(id="a0000000000000000000000000000002", name="docs-writer", team="default",
                                   model="claude-sonnet", harness="opencode"))
    await store.create_session(Session(id=SESSION_ID, agent_id=AGENT_ID, title="fix flaky test"))
    await store.create_session(Session(id=SESSION_2, agent_id=AGENT_ID, title="review PR 42"))


async def seed_chat(store) -> None:
    """A finished turn with a tool call and a failed turn, journaled as the engine writes them."""
    await seed_basic(store)
    sid, t1, t2 = SESSION_ID, "70000000000000000000000000000001", "70000000000000000000000000000002"
    a = store.append
    await a(sid, "turn.queued", {}, turn_id=t1)
    await a(sid, "user.message", {"text": "Why does test_sync flake?"}, turn_id=t1)
    await a(sid, "turn.started", {}, turn_id=t1)
    await a(sid, "model.requested", {}, turn_id=t1)
    await a(sid, "model.message", {"text": "Let me run it.", "tool_calls": [
        {"id": "c1", "name": "bash", "arguments": json.dumps({"command": "pytest -q tests/test_sync.py"})}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 40}, "cost_usd": 0.0021}, turn_id=t1)
    await a(sid, "tool.started", {"tool_call_id": "c1", "name": "bash"}, turn_id=t1)
    await a(sid, "tool.finished", {"tool_call_id": "c1", "output": "1 failed, 3 passed\n\x1b[31mFAILED\x1b[0m",
                                   "exit_code": 1, "truncated": False}, turn_id=t1)
    await a(sid, "model.requested", {}, turn_id=t1)
    await a(sid, "model.message", {"text": "It races on `tmp_path`.\n\n```python\nassert done.wait(1)\n```",
                                   "usage": {"prompt_tokens": 1400, "completion_tokens": 60},
                                   "cost_usd": 0.0025}, turn_id=t1)
    await a(sid, "turn.completed", {}, turn_id=t1)
    await a(sid, "turn.queued", {}, turn_id=t2)
    await a(sid, "user.message", {"text": "Fix it please."}, turn_id=t2)
    await a(sid, "turn.started", {}, turn_id=t2)
    await a(sid, "model.requested", {}, turn_id=t2)
    await a(sid, "turn.failed", {"reason": "gateway: 429 rate limited"}, turn_id=t2)
    # The rows the engine derives from that journal (turn totals add to the session's): the chat's
    # header and the sessions table then show the same tokens, cost and status as the turns.
    await store.create_turn(Turn(id=t1, session_id=sid))
    await store.update_turn(t1, status=TurnStatus.COMPLETED, add_prompt_tokens=2600, add_completion_tokens=100,
                            add_cost_usd=0.0046)
    await store.create_turn(Turn(id=t2, session_id=sid))
    await store.update_turn(t2, status=TurnStatus.FAILED, error="gateway: 429 rate limited")
    await store.set_session_status(sid, SessionStatus.FAILED)


async def seed_sandboxes(store, n: int = 4) -> None:
    await seed_basic(store)
    phases = ["Running", "Suspended", "Pending", "Failed"]
    for i in range(n):
        await store.put_sandbox(SandboxRecord(
            id=f"s-{i:012x}", backend="local", team="platform", phase=phases[i % 4], agent_id=AGENT_ID,
            # The first two belong to SESSION_ID (deleting it deletes both), the third to the other
            # seeded session; the rest each to a session of its own (gone), with a short id of its
            # own (5e030000, 5e040000, ...).
            session_id={0: SESSION_ID, 1: SESSION_ID, 2: SESSION_2}.get(i, f"5e{i:02x}{i:028x}"),
            ready=phases[i % 4] == "Running",
            restarts=i, created_at=FROZEN))


@pytest.fixture
def services_factory(tmp_path: Path) -> Callable[..., Services]:
    def make(**kw: Any) -> Services:
        return make_services(tmp_path, **kw)
    return make


class FakeSandboxBackend:
    """A stand-in for lap_tui.sandbox's backend: records calls, reports through the store."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.events: asyncio.Queue | None = None
        self.store = None

    async def watch(self, *, poll_interval: float = 1.0):
        from lap_tui.domain.sandbox import SandboxEvent, SandboxPhase, SandboxStatus

        self.events = asyncio.Queue()
        for rec in await self.store.list_sandboxes():
            yield SandboxEvent("added", SandboxStatus(id=rec.id, backend=rec.backend, team=rec.team,
                                                     phase=SandboxPhase(rec.phase), ready=rec.ready,
                                                     agent_id=rec.agent_id, session_id=rec.session_id,
                                                     restarts=rec.restarts, created_at=rec.created_at))
        while True:
            yield await self.events.get()

    async def _set(self, sandbox_id: str, phase: str, ready: bool) -> None:
        from lap_tui.domain.sandbox import SandboxEvent, SandboxPhase, SandboxStatus

        rec = await self.store.get_sandbox(sandbox_id)
        rec = await self.store.put_sandbox(replace(rec, phase=phase, ready=ready))
        self.events.put_nowait(SandboxEvent("modified", SandboxStatus(
            id=rec.id, backend=rec.backend, team=rec.team, phase=SandboxPhase(phase), ready=ready,
            agent_id=rec.agent_id, session_id=rec.session_id, restarts=rec.restarts, created_at=rec.created_at)))

    async def suspend(self, sandbox_id: str):
        self.calls.append(("suspend", sandbox_id))
        await self._set(sandbox_id, "Suspended", False)

    async def resume(self, sandbox_id: str):
        self.calls.append(("resume", sandbox_id))
        await self._set(sandbox_id, "Running", True)

    async def delete(self, sandbox_id: str):
        from lap_tui.domain.sandbox import SandboxEvent, SandboxPhase, SandboxStatus

        self.calls.append(("delete", sandbox_id))
        rec = await self.store.get_sandbox(sandbox_id)
        await self.store.delete_sandbox(sandbox_id)
        self.events.put_nowait(SandboxEvent("deleted", SandboxStatus(id=rec.id, backend=rec.backend, team=rec.team,
                                                                     phase=SandboxPhase(rec.phase))))

    async def shell(self, sandbox_id: str, argv=None) -> int:
        self.calls.append(("shell", sandbox_id))
        return 0

    async def logs(self, sandbox_id: str, *, tail: int | None = None) -> list[str]:
        return ["booted", "ready \x1b]0;pwned\x07ok"]


def chat_open(app) -> bool:
    """The chat screen is on top with its widgets composed (under load the screen can be on the
    stack a while before its children are: querying #draft then raised NoMatches)."""
    from lap_tui.tui.screens.chat import ChatScreen

    return isinstance(app.screen, ChatScreen) and bool(app.screen.query("#draft"))


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until `predicate()` holds (a readiness wait, not a timing assertion; the
    limit is generous so that only a hang reaches it on a busy machine)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


async def log_on_screen(app, pilot):
    """A bare transcript view on the app's screen once the app has started (the test feeds it by hand)."""
    from lap_tui.tui.widgets.transcript import TranscriptView

    await wait_for(pilot, lambda: app.store is not None and app.agents_cache and app.engine is not None,
                   what="start-up")
    log = TranscriptView(app.sanitiser, {})
    await app.screen.mount(log)
    return log


async def streaming_in_log(app, pilot):
    """A transcript view on the app's screen holding one streaming assistant step: (view, block, entry)."""
    from lap_tui.tui.chat_model import Block

    log = await log_on_screen(app, pilot)
    block = Block(key="assistant:1", kind="assistant", turn_id="t", streaming=True)
    await log.show([block])
    return log, block, log.transcript.by_key[block.key]


def transcript_text(view) -> str:
    """Every row of a transcript view as plain text (what scrolling through it shows)."""
    return "\n".join(row.rstrip() for row in view.transcript.text_rows())


def entry_text(view, entry) -> str:
    """One block's rows in a transcript view as plain text (no decoration)."""
    t = view.transcript
    return "\n".join("".join(s.text for s in line).rstrip() for line in entry.lines(t.r, t.width))


def last_turn_text(view) -> str:
    """The newest turn status line in a transcript view."""
    return entry_text(view, next(e for e in reversed(view.transcript.entries) if e.kind == "turn"))
