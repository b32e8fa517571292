"""The engine: drives the turns of sessions, journaling every step before it happens.

One driver per session (the store's lease decides); every other process watches. A turn
is a loop of model call -> tool calls -> model call until the model answers without tool
calls or the step limit is reached. After a crash, the next driver rebuilds the turn from
the journal and continues from its last checkpoint; completed steps are never repeated.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from lap_tui.config import Settings
from lap_tui.domain.clock import iso_from_epoch
from lap_tui.domain.errors import InvalidInput, LapError, StoreError
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import EventKind, JournalEvent, ToolCallState, Turn, TurnStatus, advance_turn
from lap_tui.domain.lease import LeaseLost
from lap_tui.domain.replay import TurnState, rebuild_turn
from lap_tui.domain.secrets import Redactor, RedactStream
from lap_tui.domain.session import SessionStatus
from lap_tui.engine.api import LiveText
from lap_tui.engine.context import build_messages, turn_messages
from lap_tui.engine.holder import holder_is_dead, new_holder
from lap_tui.harness.builtin import IDEMPOTENT, TOOL_SPECS, BuiltinTools
from lap_tui.sandbox.base import SandboxBackend, SandboxGone
from lap_tui.store.base import Store

log = logging.getLogger(__name__)

UNFINISHED = (TurnStatus.QUEUED, TurnStatus.RUNNING, TurnStatus.INTERRUPTED)
_SESSION_STATUS = {TurnStatus.COMPLETED: SessionStatus.IDLE, TurnStatus.CANCELLED: SessionStatus.IDLE,
                   TurnStatus.FAILED: SessionStatus.FAILED}


@dataclass(frozen=True)
class EngineOptions:
    max_steps: int = 25  # model calls per turn
    checkpoint_interval: float = 0.05  # seconds between model.delta checkpoints while streaming
    live_interval: float = 0.02  # streamed text reaches local watchers at most this often
    lease_ttl: float = 15.0
    stream_attempts: int = 3  # model calls per step when a stream dies mid-way
    follow_interval: float = 0.05  # polling of the journal by watchers (SQLite)


class Engine:
    """Implements lap_tui.engine.api.EngineApi for the TUI, `lap-tui send` and the worker."""

    def __init__(self, store: Store, settings: Settings, *, sandboxes: Callable[[], SandboxBackend],
                 gateway: Callable[[], Any], options: EngineOptions | None = None, holder: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.options = options or EngineOptions()
        self.holder = holder or new_holder()
        self._sandbox_factory = sandboxes
        self._gateway_factory = gateway
        self._sandboxes: SandboxBackend | None = None
        self._gateway: Any = None
        self._drivers: dict[str, asyncio.Task[bool]] = {}  # session id -> its driving task
        self._turn_tasks: dict[str, asyncio.Task[None]] = {}  # turn id -> the task running it
        self._builtin_turns: dict[str, str] = {}  # of those, the built-in loop's -> session id
        self.handed_back: list[str] = []  # turns close() left unfinished for the next driver
        self._closing = False  # close() began: see `closing`
        self._watchers: dict[str, set[asyncio.Queue[Any]]] = {}
        self._redact = settings.redactor
        self._turn_masks: dict[str, Redactor] = {}  # turn id -> its agent's secrets masked too
        # Called with each turn this process has driven until it stopped (`worker --json`).
        self.on_turn_driven: Callable[[str], Awaitable[None] | None] | None = None

    # --- services, built on first use (off the TUI's first paint) ----------------------
    @property
    def sandboxes(self) -> SandboxBackend:
        if self._sandboxes is None:
            self._sandboxes = self._sandbox_factory()
        return self._sandboxes

    @property
    def gateway(self) -> Any:
        if self._gateway is None:
            self._gateway = self._gateway_factory()
        return self._gateway

    async def prepare(self) -> None:
        """Build the gateway client before the first turn needs it, in a thread: its import and
        TLS setup take tens of milliseconds that would stall a UI's event loop at the first send."""
        if self._gateway is None:
            client = await asyncio.to_thread(self._gateway_factory)
            if self._gateway is None:
                self._gateway = client
            else:  # built meanwhile by a turn: keep that one
                await client.aclose()

    async def close(self) -> None:
        """Stop driving at once. A CLI turn detaches (its CLI goes on in the sandbox, cli_turn.py);
        a built-in turn is handed back at its last checkpoint, as after a crash: it stays
        unfinished, its lease is released, and the next driver (the session reopened, a worker)
        resumes it (a command cut short is reported to the model as interrupted, never re-run).
        Waiting for it instead kept a quitting TUI alive for as long as the turn ran."""
        handing_back = self.stop_driving()
        for session_id, task in list(self._drivers.items()):
            # A driver whose turn was just handed back stops by itself and releases its lease;
            # cancelling it too could cut that release short.
            if session_id not in handing_back:
                task.cancel()
        await asyncio.gather(*self._drivers.values(), return_exceptions=True)
        if self._gateway is not None:
            await self._gateway.aclose()
        if self._sandboxes is not None:
            await self._sandboxes.close()

    @property
    def closing(self) -> bool:
        return self._closing

    def stop_driving(self) -> set[str]:
        """The first half of close(), callable before the caller stops its own tasks that wait
        on drivers (the TUI's standby worker): no new turn starts, and the running built-in
        turns are cancelled as handed back. Returns the sessions whose turn was handed back."""
        self._closing = True
        sessions = set()
        for turn_id, session_id in list(self._builtin_turns.items()):
            task = self._turn_tasks.get(turn_id)
            if task is not None and not task.done():
                if turn_id not in self.handed_back:
                    self.handed_back.append(turn_id)
                sessions.add(session_id)
                task.cancel()
        return sessions

    # --- EngineApi -----------------------------------------------------------------------
    async def queue(self, session_id: str, text: str) -> str:
        """Journal a new turn with the user's message; someone (worker, TUI) will drive it."""
        if not text.strip():
            raise InvalidInput("the message is empty", "type something to send")
        session = await self.store.get_session(session_id)
        turn = await self.store.create_turn(Turn(id=new_id(), session_id=session.id))
        await self.store.append(session.id, EventKind.TURN_QUEUED.value, {}, turn_id=turn.id)
        await self.store.append(session.id, EventKind.USER_MESSAGE.value, {"text": text}, turn_id=turn.id)
        await self.store.set_session_status(session.id, SessionStatus.QUEUED)
        return turn.id

    async def send(self, session_id: str, text: str) -> str:
        turn_id = await self.queue(session_id, text)
        self.start(session_id)
        return turn_id

    def start(self, session_id: str) -> asyncio.Task[bool]:
        """Drive the session's unfinished turns in the background (if no one else does)."""
        task = self._drivers.get(session_id)
        if task is None or task.done():
            task = asyncio.create_task(self.drive_session(session_id), name=f"drive {session_id[:8]}")
            task.add_done_callback(_log_failure)
            self._drivers[session_id] = task
        return task

    async def cancel(self, turn_id: str) -> None:
        turn = await self.store.get_turn(turn_id)
        if turn.status.finished:
            return
        task = self._turn_tasks.get(turn_id)
        if task is not None:
            task.cancel()
            return
        driver = self._drivers.get(turn.session_id)
        if driver is not None and not driver.done():  # we drive; this one waits in the queue
            await self._journal_cancelled(turn, None, "cancelled by the user")
            return
        # Not ours. If nobody drives the session, finish it here; else ask its driver.
        if await self._acquire(turn.session_id):
            try:
                await self._journal_cancelled(turn, None, "cancelled by the user")
            finally:
                await self.store.release_lease(turn.session_id, self.holder)
        else:
            await self.store.append(turn.session_id, EventKind.CANCEL_REQUESTED.value, {}, turn_id=turn_id)

    async def retry(self, turn_id: str) -> str:
        turn = await self.store.get_turn(turn_id)
        if turn.status is not TurnStatus.FAILED:
            raise InvalidInput(f"turn {turn_id[:8]} is {turn.status.value}", "only a failed turn can be retried")
        advance_turn(turn.status, TurnStatus.QUEUED)
        await self.store.update_turn(turn_id, status=TurnStatus.QUEUED)
        await self.store.append(turn.session_id, EventKind.TURN_QUEUED.value, {"retry": True}, turn_id=turn_id)
        await self.store.set_session_status(turn.session_id, SessionStatus.QUEUED)
        self.start(turn.session_id)
        return turn_id

    async def watch(self, session_id: str, *, after_seq: int = 0) -> AsyncIterator[JournalEvent | LiveText]:
        """Journal events from any process, plus live text of turns this engine drives.

        For turns driven here, `model.delta` checkpoints are dropped from the stream: the same
        text already came as LiveText.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._watchers.setdefault(session_id, set()).add(queue)

        async def pump() -> None:
            seen = after_seq
            while True:  # rides out store outages: follows on from the last event seen
                try:
                    async for ev in self.store.follow(session_id, after_seq=seen,
                                                      poll_interval=self.options.follow_interval):
                        seen = ev.seq
                        queue.put_nowait(ev)
                except StoreError as exc:
                    log.warning("following session %s paused: %s", session_id, exc)
                    await asyncio.sleep(1.0)

        pumper = asyncio.create_task(pump())
        try:
            while True:
                item = await queue.get()
                if (isinstance(item, JournalEvent) and item.kind == EventKind.MODEL_DELTA
                        and item.turn_id in self._turn_tasks):
                    continue
                yield item
        finally:
            pumper.cancel()
            self._watchers[session_id].discard(queue)

    # --- driving -------------------------------------------------------------------------
    async def unfinished_sessions(self, limit: int = 100, *, idle_for: float = 0.0) -> list[str]:
        """Sessions with unfinished turns; with `idle_for`, only those whose turn has not
        changed for that many seconds (nobody seems to be driving it)."""
        turns = await self.store.find_turns(UNFINISHED, limit=limit)
        if idle_for > 0:
            cutoff = iso_from_epoch(time.time() - idle_for)
            turns = [t for t in turns if t.updated_at < cutoff]
        return list(dict.fromkeys(t.session_id for t in turns))

    async def _report_turn(self, turn_id: str) -> None:
        if self.on_turn_driven is None:
            return
        try:
            result = self.on_turn_driven(turn_id)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a reporter must not stop the driving
            log.exception("reporting turn %s failed", turn_id)

    async def drive_session(self, session_id: str) -> bool:
        """Run the session's unfinished turns, oldest first, while holding its lease.

        Returns False at once if another live process drives the session.
        """
        if not await self._acquire(session_id):
            return False
        lost = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(session_id, lost))
        try:
            while not lost.is_set() and not self._closing:
                turns = [t for t in await self.store.list_turns(session_id) if t.status in UNFINISHED]
                if not turns:
                    break
                turn = turns[0]
                task = asyncio.create_task(self._run_turn(turn), name=f"turn {turn.id[:8]}")
                self._turn_tasks[turn.id] = task
                waiter = asyncio.create_task(lost.wait())
                try:
                    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    if lost.is_set() and not task.done():
                        task.cancel()  # another driver took over: stop writing at once
                    await asyncio.gather(task, return_exceptions=True)
                    self._turn_tasks.pop(turn.id, None)
                    self._turn_masks.pop(turn.id, None)
                    await self._report_turn(turn.id)
                if task.cancelled() or isinstance(task.exception(), LeaseLost):
                    break
                if isinstance(task.exception(), StoreError):
                    log.warning("turn %s paused, the store failed: %s", turn.id, task.exception())
                    break
                if task.exception() is not None:
                    log.error("turn %s crashed: %r", turn.id, task.exception())
                    break
        finally:
            beat.cancel()
            if not lost.is_set():
                try:
                    await self.store.release_lease(session_id, self.holder)
                except StoreError as exc:  # it expires by itself
                    log.warning("could not release the lease of %s: %s", session_id, exc)
        return True

    async def _acquire(self, session_id: str) -> bool:
        ttl = self.options.lease_ttl
        if await self.store.acquire_lease(session_id, self.holder, ttl):
            return True
        lease = await self.store.get_lease(session_id)
        if lease is not None and holder_is_dead(lease.holder):
            return await self.store.acquire_lease(session_id, self.holder, ttl, steal_from=lease.holder)
        return False

    async def _heartbeat(self, session_id: str, lost: asyncio.Event) -> None:
        ttl = self.options.lease_ttl
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.store.renew_lease(session_id, self.holder, ttl):
                    lost.set()
                    return
            except LapError as exc:  # the database may be restarting: keep trying until expiry
                log.warning("lease heartbeat failed: %s", exc)

    async def journal(self, turn: Turn, kind: EventKind, data: dict[str, Any]) -> JournalEvent:
        return await self.store.append(turn.session_id, kind.value, data, turn_id=turn.id, holder=self.holder)

    def publish(self, session_id: str, item: Any) -> None:
        for q in self._watchers.get(session_id, ()):
            q.put_nowait(item)

    async def _run_turn(self, turn: Turn) -> None:
        session = await self.store.get_session(turn.session_id)
        agent = await self.store.get_agent_by_id(session.agent_id)
        self._turn_masks[turn.id] = turn_redactor(self.settings, agent.sandbox.env)
        events = await self.store.read_events(session.id)
        mine = [e for e in events if e.turn_id == turn.id]
        others = [e for e in events if e.turn_id != turn.id]
        state = rebuild_turn(turn.id, mine)
        try:
            if state.user_message is None:
                raise _TurnFailed("its message was never recorded (lap-tui stopped while queueing it); send it again")
            resumed = any(e.kind in (EventKind.TURN_STARTED, EventKind.MODEL_REQUESTED) for e in mine)
            if resumed:
                mine += await self._settle_interrupted(turn, state)
                mine.append(await self.journal(turn, EventKind.TURN_RESUMED, {"from_seq": state.last_seq}))
            else:
                mine.append(await self.journal(turn, EventKind.TURN_STARTED, {"model": agent.model}))
            await self.store.update_turn(turn.id, status=TurnStatus.RUNNING)
            await self.store.set_session_status(session.id, SessionStatus.RUNNING)
            watcher = asyncio.create_task(self._watch_cancel(turn, asyncio.current_task()))
            try:
                harness = self._harness(agent)
                if harness is None:  # the built-in tool loop
                    self._builtin_turns[turn.id] = session.id
                    try:
                        await self._loop(turn, agent, session, others, mine)
                    finally:
                        self._builtin_turns.pop(turn.id, None)
                else:
                    from lap_tui.engine.cli_turn import run_cli_turn

                    await run_cli_turn(self, turn, agent, session, mine, harness)
            finally:
                watcher.cancel()
        except asyncio.CancelledError:
            if turn.id in self.handed_back:  # close(): unfinished, for the next driver
                raise
            # Re-read: an append interrupted by the cancel may have committed all the same.
            await asyncio.shield(self._journal_cancelled(turn, None, "cancelled by the user"))
        except (LeaseLost, StoreError):
            # Not the turn's fault: it stays unfinished and resumes from its last checkpoint
            # once the store answers again (the worker retries) or another driver takes over.
            raise
        except _TurnFailed as exc:
            await self._fail(turn, exc.reason)
        except LapError as exc:
            await self._fail(turn, str(exc))

    def _harness(self, agent: Any) -> Any:
        """The agent's CLI harness definition; None for the built-in loop (harnesses/)."""
        if agent.harness == "builtin":
            return None
        from lap_tui.engine.cli_turn import harness_definitions

        h = harness_definitions(self.settings).get(agent.harness)
        if h is None:
            raise _TurnFailed(f"harness {agent.harness!r} is not defined here (see `lap-tui harnesses list`)")
        return h if h.is_cli else None

    async def _settle_interrupted(self, turn: Turn, state: TurnState) -> list[JournalEvent]:
        """Tool calls that started but never finished: interrupted, unless safe to re-run."""
        out = []
        for tc in state.tool_calls.values():
            if tc.state is ToolCallState.STARTED and tc.name not in IDEMPOTENT:
                out.append(await self.journal(turn, EventKind.TOOL_INTERRUPTED, {
                    "tool_call_id": tc.id, "name": tc.name,
                    "reason": "interrupted: lap-tui stopped while this tool call was running"}))
        return out

    async def _loop(self, turn: Turn, agent: Any, session: Any, others: list[JournalEvent],
                    mine: list[JournalEvent]) -> None:
        tools: BuiltinTools | None = None
        # The history before this turn does not change while it runs: build it once.
        first = mine[0].seq if mine else 2**62
        history = build_messages(agent.system_prompt, [e for e in others if e.seq < first], None)
        while True:
            state = rebuild_turn(turn.id, mine)
            todo = [tc for tc in state.tool_calls.values()
                    if tc.state is ToolCallState.REQUESTED
                    or (tc.state is ToolCallState.STARTED and tc.name in IDEMPOTENT)]
            if todo:
                if tools is None:
                    tools = await self._tools(agent, session, turn)
                for tc in todo:
                    mine.append(await self.journal(turn, EventKind.TOOL_STARTED, {
                        "tool_call_id": tc.id, "name": tc.name, "arguments": tc.arguments}))
                    try:
                        outcome = await tools.run(tc.name, tc.arguments)
                    except SandboxGone as exc:
                        # Its pod went away mid-call: the outcome is unknown, so the call is journaled
                        # interrupted (never re-run) and the turn goes on once the sandbox is ready again.
                        mine.append(await self.journal(turn, EventKind.TOOL_INTERRUPTED, {
                            "tool_call_id": tc.id, "name": tc.name,
                            "reason": f"interrupted: {self._redact(exc.message)}"}))
                        tools = await self._tools(agent, session, turn)
                        continue
                    mine.append(await self.journal(turn, EventKind.TOOL_FINISHED, {
                        "tool_call_id": tc.id, "name": tc.name, **outcome.to_data()}))
                continue
            if state.steps and not state.steps[-1].tool_calls:
                await self._complete(turn, state)
                return
            if len(state.steps) >= self.options.max_steps:
                raise _TurnFailed(f"the step limit ({self.options.max_steps} model calls) was reached")
            messages = history + turn_messages(state, current=True)
            mine.append(await self._model_step(turn, agent.model, messages))

    async def _tools(self, agent: Any, session: Any, turn: Turn) -> BuiltinTools:
        from lap_tui.sandbox import ensure_for_session

        status = await ensure_for_session(self.sandboxes, self.store, agent, session)
        return BuiltinTools(self.sandboxes, status.id, redact=self.mask(turn))

    async def _model_step(self, turn: Turn, model: str, messages: list[dict[str, Any]]) -> JournalEvent:
        from lap_tui.gateway import Completion, StreamInterrupted, TextDelta

        last_error = ""
        for attempt in range(1, self.options.stream_attempts + 1):
            await self.journal(turn, EventKind.MODEL_REQUESTED, {"model": model, "attempt": attempt})
            pending: list[str] = []
            last_flush = time.monotonic()
            live = _LiveBuffer(lambda text: self.publish(turn.session_id, LiveText(turn.session_id, turn.id, text)),
                               self.options.live_interval)
            # Masked before it is journaled or shown: a secret the model repeats, even split across
            # chunks, never reaches the journal, the watchers or the model's next context.
            redact = self.mask(turn)
            masked = RedactStream(redact)
            try:
                async for ev in self.gateway.stream_chat(model, messages, tools=TOOL_SPECS):
                    if isinstance(ev, TextDelta):
                        text = masked.feed(ev.text)
                        if not text:
                            continue
                        live.add(text)
                        pending.append(text)
                        if len(pending) % 8 == 0:
                            # One network read can hold hundreds of chunks that parse without an
                            # await: let the UI's keys and frames in between.
                            await asyncio.sleep(0)
                        now = time.monotonic()
                        if now - last_flush >= self.options.checkpoint_interval:
                            await self.journal(turn, EventKind.MODEL_DELTA, {"text": "".join(pending)})
                            pending.clear()
                            last_flush = now
                    elif isinstance(ev, Completion):
                        live.add(masked.flush())
                        live.flush()
                        usage = ev.usage.to_dict() if ev.usage else {}
                        cost = float(ev.cost_usd or 0.0)
                        event = await self.journal(turn, EventKind.MODEL_MESSAGE, {
                            "text": redact(ev.text),
                            "tool_calls": [{**t.to_dict(), "arguments": redact(t.arguments)} for t in ev.tool_calls],
                            "finish_reason": ev.finish_reason, "usage": usage, "cost_usd": cost})
                        await self.store.update_turn(turn.id, add_prompt_tokens=usage.get("prompt_tokens", 0),
                                                     add_completion_tokens=usage.get("completion_tokens", 0),
                                                     add_cost_usd=cost)
                        return event
                raise StreamInterrupted("the stream ended without a final message")
            except StreamInterrupted as exc:
                tail = masked.flush()
                if tail:
                    live.add(tail)
                    pending.append(tail)
                live.flush()
                if pending:  # keep what was said: a reopened terminal shows it
                    await self.journal(turn, EventKind.MODEL_DELTA, {"text": "".join(pending)})
                last_error = str(exc)
                log.warning("model stream interrupted (attempt %d): %s", attempt, exc)
        raise _TurnFailed(f"the model's reply broke off {self.options.stream_attempts} times: {last_error}")

    async def _complete(self, turn: Turn, state: TurnState) -> None:
        await self.journal(turn, EventKind.TURN_COMPLETED, {
            "prompt_tokens": state.prompt_tokens, "completion_tokens": state.completion_tokens,
            "cost_usd": state.cost_usd, "steps": len(state.steps)})
        await self.store.update_turn(turn.id, status=TurnStatus.COMPLETED)
        await self.session_after(turn, TurnStatus.COMPLETED)

    async def _fail(self, turn: Turn, reason: str) -> None:
        reason = self.mask(turn)(reason)
        await self.journal(turn, EventKind.TURN_FAILED, {"reason": reason})
        await self.store.update_turn(turn.id, status=TurnStatus.FAILED, error=reason)
        await self.session_after(turn, TurnStatus.FAILED)

    async def _journal_cancelled(self, turn: Turn, state: TurnState | None, reason: str) -> None:
        if state is None:
            state = rebuild_turn(turn.id, await self.store.read_events(turn.session_id, turn_id=turn.id))
        for tc in state.tool_calls.values():
            if tc.state is ToolCallState.STARTED:
                await self.journal(turn, EventKind.TOOL_INTERRUPTED,
                                   {"tool_call_id": tc.id, "name": tc.name, "reason": reason})
        await self.journal(turn, EventKind.TURN_CANCELLED, {"reason": reason})
        await self.store.update_turn(turn.id, status=TurnStatus.CANCELLED)
        await self.session_after(turn, TurnStatus.CANCELLED)

    async def session_after(self, turn: Turn, status: TurnStatus) -> None:
        turns = await self.store.list_turns(turn.session_id)
        queued = any(t.status in UNFINISHED for t in turns if t.id != turn.id)
        await self.store.set_session_status(turn.session_id,
                                            SessionStatus.QUEUED if queued else _SESSION_STATUS[status])

    async def _watch_cancel(self, turn: Turn, task: asyncio.Task[Any] | None) -> None:
        """Cancel requests from other processes arrive through the journal."""
        seen = await self.store.last_seq(turn.session_id)
        while True:
            await asyncio.sleep(0.2)
            if await self.store.last_seq(turn.session_id) == seen:
                continue
            for ev in await self.store.read_events(turn.session_id, after_seq=seen):
                seen = ev.seq
                if ev.kind == EventKind.CANCEL_REQUESTED and ev.turn_id == turn.id and task is not None:
                    task.cancel()
                    return


    def mask(self, turn: Turn) -> Redactor:
        return self._turn_masks.get(turn.id) or self._redact


def turn_redactor(settings: Settings, agent_env: Any) -> Redactor:
    """Every secret of the settings plus the values of the variables the agent names, also as
    they appear inside JSON strings (tool-call arguments are JSON text). Encoded forms (base64,
    URL-encoding, ...) are not recognised: docs/SECURITY.md."""
    from lap_tui.sandbox.env import named_values

    values = [*settings.redactor.secrets, *named_values(agent_env)]
    return Redactor([*values, *(json.dumps(v)[1:-1] for v in values)])


class _LiveBuffer:
    """Coalesces streamed chunks into at most one LiveText per `interval`: a gateway can send
    thousands of chunks a second, and every one reaching the UI would starve its keys."""

    def __init__(self, publish: Callable[[str], None], interval: float) -> None:
        self._publish, self._interval = publish, interval
        self._parts: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        self._parts.append(text)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parts:
            text, self._parts = "".join(self._parts), []
            self._publish(text)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s stopped: %s", task.get_name(), task.exception())


class _TurnFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
