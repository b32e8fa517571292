"""The store in portable SQL, shared by the SQLite and Postgres implementations.

Queries are written once with `?` placeholders; a dialect supplies connections (`Db`),
transactions, the journal append (the one statement that differs) and error mapping.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from importlib import resources
from typing import Any, AsyncIterator, Callable, Protocol, Sequence

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.clock import now_iso
from lap_tui.domain.errors import Conflict, InvalidInput, NotFound, StoreError
from lap_tui.domain.ids import new_id, validate_id_prefix
from lap_tui.domain.names import clip
from lap_tui.domain.journal import JournalEvent, Turn, TurnStatus
from lap_tui.domain.lease import Lease
from lap_tui.domain.session import Session, SessionStatus
from lap_tui.store.base import MigrationReport, SandboxRecord, Store

Row = Sequence[Any]

IDLE_POLL = 0.5  # the slowest a follower polls for other processes' appends, once nothing happens


class _LocalAppends:
    """Wakes this process's followers of a session as soon as this process appends to it, so
    they need not poll fast for their own process's events."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, session_id: str) -> None:
        for wake in self._waiters.get(session_id, ()):
            wake.set()

    def listen(self, session_id: str) -> asyncio.Event:
        wake = asyncio.Event()
        self._waiters.setdefault(session_id, set()).add(wake)
        return wake

    def forget(self, session_id: str, wake: asyncio.Event) -> None:
        waiters = self._waiters.get(session_id)
        if waiters is not None:
            waiters.discard(wake)
            if not waiters:
                del self._waiters[session_id]


class Db(Protocol):
    """One connection (inside or outside a transaction), `?` placeholders."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def execute(self, sql: str, *args: Any) -> int: ...


class Migration:
    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version, self.name, self.sql = version, name, sql

    def statements(self) -> list[str]:
        # Our migrations hold no ';' inside literals, so splitting on ';' is exact.
        text = re.sub(r"--[^\n]*", "", self.sql)
        return [s.strip() for s in text.split(";") if s.strip()]


def load_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("lap_tui.store.migrations").iterdir():
        m = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    assert [m.version for m in out] == list(range(1, len(out) + 1)), "migrations must be numbered 1..N"
    return out


MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version
SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS lap_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"

_AGENT_COLS = "a.id, a.team, a.name, a.model, a.system_prompt, a.harness, a.sandbox, a.created_at, a.updated_at"
_SESSION_COLS = ("s.id, s.agent_id, s.title, s.status, s.context_key, s.sandbox_ref, s.harness_session_id, "
                 "s.created_at, s.updated_at, s.prompt_tokens, s.completion_tokens, s.cost_usd, s.last_seq, "
                 "a.name, a.team")
_TURN_COLS = "id, session_id, status, created_at, updated_at, prompt_tokens, completion_tokens, cost_usd, error"
_EVENT_COLS = "seq, session_id, turn_id, kind, at, data"
_SANDBOX_COLS = ("id, backend, team, agent_id, session_id, context_key, phase, ready, restarts, message, "
                 "created_at, updated_at, last_used_at, suspended_at, data")
_SESSION_FIELDS = {"title", "context_key", "sandbox_ref", "harness_session_id"}


def _agent(r: Row) -> Agent:
    return Agent(id=r[0], team=r[1], name=r[2], model=r[3], system_prompt=r[4], harness=r[5],
                 sandbox=SandboxSettings.from_dict(json.loads(r[6])), created_at=r[7], updated_at=r[8])


def _session(r: Row) -> Session:
    return Session(id=r[0], agent_id=r[1], title=r[2], status=SessionStatus(r[3]), context_key=r[4],
                   sandbox_ref=r[5], harness_session_id=r[6], created_at=r[7], updated_at=r[8],
                   prompt_tokens=r[9], completion_tokens=r[10], cost_usd=r[11], last_seq=r[12],
                   agent_name=r[13], team=r[14])


def _turn(r: Row) -> Turn:
    return Turn(id=r[0], session_id=r[1], status=TurnStatus(r[2]), created_at=r[3], updated_at=r[4],
                prompt_tokens=r[5], completion_tokens=r[6], cost_usd=r[7], error=r[8])


def _event(r: Row) -> JournalEvent:
    return JournalEvent(seq=r[0], session_id=r[1], turn_id=r[2], kind=r[3], at=r[4], data=json.loads(r[5]))


def _sandbox(r: Row) -> SandboxRecord:
    return SandboxRecord(id=r[0], backend=r[1], team=r[2], agent_id=r[3], session_id=r[4], context_key=r[5],
                         phase=r[6], ready=bool(r[7]), restarts=r[8], message=r[9], created_at=r[10],
                         updated_at=r[11], last_used_at=r[12], suspended_at=r[13], data=json.loads(r[14]))


def _dumps(data: dict[str, Any] | None) -> str:
    return json.dumps(data or {}, separators=(",", ":"), ensure_ascii=False)


class SqlStore(Store):
    def __init__(self) -> None:
        self._local_appends = _LocalAppends()
        self.clock: Callable[[], float] = time.time  # lease times, where the dialect takes them locally

    # --- what a dialect provides -------------------------------------------------------
    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Db]:
        """A connection for reads outside a transaction (sees committed data)."""

    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Db]:
        """A connection inside a write transaction, committed on exit, rolled back on error."""

    @abstractmethod
    def _migration_lock(self) -> AbstractAsyncContextManager[Db]:
        """A write transaction that only one process at a time can hold, for migrating."""

    @abstractmethod
    async def _append(self, session_id: str, turn_id: str | None, kind: str, at: str, data: str,
                      holder: str | None, event_id: str) -> int | None:
        """Insert the next event; its seq, or None if the session (or `holder`'s lease) is missing.
        An `event_id` already in the journal returns that event's seq and writes nothing."""

    def _lease_now(self, now: float | None) -> tuple[str, list[Any]]:
        """SQL for "now" in lease times, and its arguments: the writer's clock (`self.clock`),
        right for SQLite, whose writers share one host. Postgres uses the server's clock."""
        return "?", [float(self.clock() if now is None else now)]

    @abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool: ...

    # --- schema ------------------------------------------------------------------------
    async def migrate(self) -> MigrationReport:
        # The common case, a current schema, needs no write lock: one read and done.
        try:
            async with self._read() as db:
                current = await self._version(db)
        except Exception:
            current = 0  # no lap_schema table yet (a real failure shows again under the lock)
        if current == LATEST:
            return MigrationReport(before=current, after=current, applied=())
        async with self._migration_lock() as db:
            await db.execute(SCHEMA_TABLE)
            before = await self._version(db)
            self._refuse_newer(before)
            applied = []
            for m in MIGRATIONS:
                if m.version <= before:
                    continue
                for stmt in m.statements():
                    await db.execute(stmt)
                await db.execute("INSERT INTO lap_schema (version, name, applied_at) VALUES (?, ?, ?)",
                                 m.version, m.name, now_iso())
                applied.append(f"{m.version:04d}_{m.name}")
        return MigrationReport(before=before, after=max(before, LATEST), applied=tuple(applied))

    async def check_schema(self) -> int:
        async with self._read() as db:
            try:
                version = await self._version(db)
            except Exception:
                version = 0
        self._refuse_newer(version)
        if version < LATEST:
            raise StoreError(f"the database at {self.display_url} is at schema version {version}, "
                             f"this lap-tui needs {LATEST}", "run `lap-tui migrate`")
        return version

    async def _version(self, db: Db) -> int:
        rows = await db.fetch("SELECT MAX(version) FROM lap_schema")
        return int(rows[0][0] or 0)

    def _refuse_newer(self, version: int) -> None:
        if version > LATEST:
            raise StoreError(f"the database at {self.display_url} has schema version {version}, newer than "
                             f"this lap-tui knows ({LATEST})", "upgrade lap-tui before using this database")

    # --- agents ------------------------------------------------------------------------
    async def create_agent(self, agent: Agent) -> Agent:
        agent.validate()
        now = now_iso()
        agent = replace(agent, created_at=now, updated_at=now)
        try:
            async with self._write() as db:
                await db.execute(
                    "INSERT INTO agents (id, team, name, model, system_prompt, harness, sandbox, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    agent.id, agent.team, agent.name, agent.model, agent.system_prompt, agent.harness,
                    _dumps(agent.sandbox.to_dict()), now, now)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"agent {agent.name!r} already exists in team {agent.team!r}",
                               "choose another name, or edit it with `lap-tui agents edit`") from None
            raise
        return agent

    async def get_agent(self, name: str, team: str) -> Agent:
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_AGENT_COLS} FROM agents a WHERE a.team = ? AND a.name = ?", team, name)
        if not rows:
            raise NotFound(f"no agent {clip(name)!r} in team {clip(team)!r}", "see `lap-tui agents list`")
        return _agent(rows[0])

    async def get_agent_by_id(self, agent_id: str) -> Agent:
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_AGENT_COLS} FROM agents a WHERE a.id = ?", agent_id)
        if not rows:
            raise NotFound(f"no agent with id {agent_id}", "see `lap-tui agents list`")
        return _agent(rows[0])

    async def list_agents(self, team: str | None = None, *, limit: int = 1000) -> list[Agent]:
        where, args = ("WHERE a.team = ?", [team]) if team else ("", [])
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_AGENT_COLS} FROM agents a {where} ORDER BY a.team, a.name LIMIT ?",
                                  *args, limit)
        return [_agent(r) for r in rows]

    async def update_agent(self, agent: Agent) -> Agent:
        agent.validate()
        agent = replace(agent, updated_at=now_iso())
        try:
            async with self._write() as db:
                n = await db.execute(
                    "UPDATE agents SET team = ?, name = ?, model = ?, system_prompt = ?, harness = ?, sandbox = ?,"
                    " updated_at = ? WHERE id = ?",
                    agent.team, agent.name, agent.model, agent.system_prompt, agent.harness,
                    _dumps(agent.sandbox.to_dict()), agent.updated_at, agent.id)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"agent {agent.name!r} already exists in team {agent.team!r}",
                               "choose another name") from None
            raise
        if n == 0:
            raise NotFound(f"agent {agent.name!r} no longer exists", "see `lap-tui agents list`")
        return agent

    async def delete_agent(self, agent_id: str) -> int:
        async with self._write() as db:
            rows = await db.fetch("SELECT COUNT(*) FROM sessions WHERE agent_id = ?", agent_id)
            n = await db.execute("DELETE FROM agents WHERE id = ?", agent_id)
        if n == 0:
            raise NotFound(f"no agent with id {agent_id}", "see `lap-tui agents list`")
        return int(rows[0][0])

    async def count_sessions(self, agent_id: str) -> int:
        async with self._read() as db:
            rows = await db.fetch("SELECT COUNT(*) FROM sessions WHERE agent_id = ?", agent_id)
        return int(rows[0][0])

    # --- sessions ----------------------------------------------------------------------
    async def create_session(self, session: Session) -> Session:
        session.validate()
        now = now_iso()
        async with self._write() as db:
            n = await db.execute(
                "INSERT INTO sessions (id, agent_id, title, status, context_key, created_at, updated_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM agents WHERE id = ?)",
                session.id, session.agent_id, session.title, session.status.value, session.context_key,
                now, now, session.agent_id)
        if n == 0:
            raise NotFound("the session's agent no longer exists", "see `lap-tui agents list`")
        return await self.get_session(session.id)

    async def get_session(self, id_or_prefix: str) -> Session:
        prefix = validate_id_prefix("session", id_or_prefix)
        # A range scan on the primary key: 'g' sorts after every hex digit.
        async with self._read() as db:
            rows = await db.fetch(
                f"SELECT {_SESSION_COLS} FROM sessions s JOIN agents a ON a.id = s.agent_id"
                " WHERE s.id >= ? AND s.id < ? ORDER BY s.id LIMIT 2", prefix, prefix + "g")
        if not rows:
            raise NotFound(f"no session {clip(id_or_prefix)!r}", "see `lap-tui sessions list`")
        if len(rows) > 1:
            raise InvalidInput(f"session id prefix {id_or_prefix!r} is ambiguous", "give more of the id")
        return _session(rows[0])

    async def list_sessions(self, agent_id: str | None = None, *, limit: int = 100,
                            before: tuple[str, str] | None = None) -> list[Session]:
        where, args = [], []
        if agent_id:
            where.append("s.agent_id = ?")
            args.append(agent_id)
        if before:
            where.append("(s.updated_at < ? OR (s.updated_at = ? AND s.id < ?))")
            args += [before[0], before[0], before[1]]
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        async with self._read() as db:
            rows = await db.fetch(
                f"SELECT {_SESSION_COLS} FROM sessions s JOIN agents a ON a.id = s.agent_id {clause}"
                " ORDER BY s.updated_at DESC, s.id DESC LIMIT ?", *args, limit)
        return [_session(r) for r in rows]

    async def update_session(self, session_id: str, **fields: Any) -> Session:
        unknown = set(fields) - _SESSION_FIELDS
        if unknown:
            raise ValueError(f"not session fields: {sorted(unknown)}")
        if fields:
            sets = ", ".join(f"{k} = ?" for k in fields)
            async with self._write() as db:
                n = await db.execute(f"UPDATE sessions SET {sets}, updated_at = ? WHERE id = ?",
                                     *fields.values(), now_iso(), session_id)
            if n == 0:
                raise NotFound(f"no session {session_id!r}", "see `lap-tui sessions list`")
        return await self.get_session(session_id)

    async def set_session_status(self, session_id: str, status: SessionStatus) -> None:
        async with self._write() as db:
            await db.execute("UPDATE sessions SET status = ? WHERE id = ?", status.value, session_id)

    async def delete_session(self, session_id: str) -> None:
        async with self._write() as db:
            n = await db.execute("DELETE FROM sessions WHERE id = ?", session_id)
        if n == 0:
            raise NotFound(f"no session {session_id!r}", "see `lap-tui sessions list`")

    # --- turns -------------------------------------------------------------------------
    async def create_turn(self, turn: Turn) -> Turn:
        now = now_iso()
        turn = replace(turn, created_at=now, updated_at=now)
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO turns ({_TURN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                turn.id, turn.session_id, turn.status.value, now, now, turn.prompt_tokens,
                turn.completion_tokens, float(turn.cost_usd), turn.error)
        return turn

    async def get_turn(self, turn_id: str) -> Turn:
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_TURN_COLS} FROM turns WHERE id = ?", turn_id)
        if not rows:
            raise NotFound(f"no turn {turn_id!r}")
        return _turn(rows[0])

    async def list_turns(self, session_id: str) -> list[Turn]:
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_TURN_COLS} FROM turns WHERE session_id = ? ORDER BY created_at, id",
                                  session_id)
        return [_turn(r) for r in rows]

    async def find_turns(self, statuses: tuple[TurnStatus, ...], *, limit: int = 100) -> list[Turn]:
        marks = ", ".join("?" for _ in statuses)
        async with self._read() as db:
            rows = await db.fetch(
                f"SELECT {_TURN_COLS} FROM turns WHERE status IN ({marks}) ORDER BY created_at, id LIMIT ?",
                *(s.value for s in statuses), limit)
        return [_turn(r) for r in rows]

    async def update_turn(self, turn_id: str, *, status: TurnStatus | None = None, error: str | None = None,
                          add_prompt_tokens: int = 0, add_completion_tokens: int = 0,
                          add_cost_usd: float = 0.0) -> Turn:
        now = now_iso()
        async with self._write() as db:
            rows = await db.fetch(
                "UPDATE turns SET status = COALESCE(?, status), error = COALESCE(?, error), updated_at = ?,"
                " prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?,"
                f" cost_usd = cost_usd + ? WHERE id = ? RETURNING {_TURN_COLS}",
                status.value if status else None, error, now, add_prompt_tokens, add_completion_tokens,
                float(add_cost_usd), turn_id)
            if not rows:
                raise NotFound(f"no turn {turn_id!r}")
            if add_prompt_tokens or add_completion_tokens or add_cost_usd:
                await db.execute(
                    "UPDATE sessions SET prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?,"
                    " cost_usd = cost_usd + ? WHERE id = ?",
                    add_prompt_tokens, add_completion_tokens, float(add_cost_usd), rows[0][1])
        return _turn(rows[0])

    # --- journal -----------------------------------------------------------------------
    async def append(self, session_id: str, kind: str, data: dict[str, Any] | None = None, *,
                     turn_id: str | None = None, holder: str | None = None,
                     event_id: str | None = None) -> JournalEvent:
        at = now_iso()
        data = data or {}
        # Chosen here, before the first try: a retry after a lost commit reply finds it committed.
        event_id = event_id or new_id()
        seq = await self._append(session_id, turn_id, kind, at, _dumps(data), holder, event_id)
        if seq is not None:
            self._local_appends.notify(session_id)
        if seq is None:
            if holder is not None:
                lease = await self.get_lease(session_id)
                if lease is None or lease.holder != holder:
                    from lap_tui.domain.lease import LeaseLost

                    raise LeaseLost(f"this process no longer drives session {session_id}",
                                    "another process took over its lease")
            raise NotFound(f"no session {session_id!r}", "see `lap-tui sessions list`")
        return JournalEvent(seq=seq, session_id=session_id, turn_id=turn_id, kind=kind, at=at, data=data)

    async def read_events(self, session_id: str, *, after_seq: int = 0, limit: int | None = None,
                          turn_id: str | None = None) -> list[JournalEvent]:
        where, args = "session_id = ? AND seq > ?", [session_id, after_seq]
        if turn_id is not None:
            where += " AND turn_id = ?"
            args.append(turn_id)
        tail = " LIMIT ?" if limit is not None else ""
        if limit is not None:
            args.append(limit)
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_EVENT_COLS} FROM events WHERE {where} ORDER BY seq{tail}", *args)
        return [_event(r) for r in rows]

    async def last_events(self, session_id: str, n: int = 200, *,
                          before_seq: int | None = None) -> list[JournalEvent]:
        bound = before_seq if before_seq is not None else 2**62
        async with self._read() as db:
            rows = await db.fetch(
                f"SELECT {_EVENT_COLS} FROM events WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                session_id, bound, n)
        return [_event(r) for r in reversed(rows)]

    async def last_seq(self, session_id: str) -> int:
        async with self._read() as db:
            rows = await db.fetch("SELECT last_seq FROM sessions WHERE id = ?", session_id)
        if not rows:
            raise NotFound(f"no session {session_id!r}", "see `lap-tui sessions list`")
        return int(rows[0][0])

    async def follow(self, session_id: str, *, after_seq: int = 0,
                     poll_interval: float = 0.1) -> AsyncIterator[JournalEvent]:
        # Polls the session's counter (one primary-key read); Postgres overrides with LISTEN.
        # This process's own appends wake it at once; while nothing happens the poll slows down
        # to IDLE_POLL (an idle chat must not cost CPU), and speeds up again at the next event.
        seen = after_seq
        interval = poll_interval
        wake = self._local_appends.listen(session_id)
        try:
            while True:
                wake.clear()  # before reading: an append during the read still wakes us
                if await self.last_seq(session_id) > seen:
                    for ev in await self.read_events(session_id, after_seq=seen, limit=1000):
                        seen = ev.seq
                        yield ev
                    interval = poll_interval
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), interval)
                except asyncio.TimeoutError:
                    interval = min(max(poll_interval, IDLE_POLL), interval * 1.5)
        finally:
            self._local_appends.forget(session_id, wake)

    # --- leases ------------------------------------------------------------------------
    async def acquire_lease(self, session_id: str, holder: str, ttl: float, *, now: float | None = None,
                            steal_from: str | None = None) -> bool:
        t, t_args = self._lease_now(now)
        # Take it if free, expired, already ours, or held by `steal_from` (a holder the caller
        # knows is dead); the row lock makes this one-winner.
        async with self._write() as db:
            rows = await db.fetch(
                "INSERT INTO leases (session_id, holder, acquired_at, heartbeat_at, expires_at)"
                f" VALUES (?, ?, {t}, {t}, {t} + ?) ON CONFLICT (session_id) DO UPDATE SET"
                " acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at"
                " ELSE excluded.acquired_at END,"
                " holder = excluded.holder, heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.heartbeat_at"
                " OR leases.holder = ?"
                " RETURNING holder",
                session_id, holder, *t_args, *t_args, *t_args, float(ttl), steal_from or "")
        return bool(rows)

    async def renew_lease(self, session_id: str, holder: str, ttl: float, *, now: float | None = None) -> bool:
        t, t_args = self._lease_now(now)
        async with self._write() as db:
            n = await db.execute(
                f"UPDATE leases SET heartbeat_at = {t}, expires_at = {t} + ? WHERE session_id = ? AND holder = ?"
                f" AND expires_at >= {t}", *t_args, *t_args, float(ttl), session_id, holder, *t_args)
        return n == 1

    async def release_lease(self, session_id: str, holder: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM leases WHERE session_id = ? AND holder = ?", session_id, holder)

    async def get_lease(self, session_id: str) -> Lease | None:
        async with self._read() as db:
            rows = await db.fetch("SELECT session_id, holder, acquired_at, heartbeat_at, expires_at FROM leases"
                                  " WHERE session_id = ?", session_id)
        return Lease(*rows[0]) if rows else None

    # --- sandboxes ---------------------------------------------------------------------
    async def put_sandbox(self, record: SandboxRecord) -> SandboxRecord:
        now = now_iso()
        record = replace(record, created_at=record.created_at or now, updated_at=now)
        values = [getattr(record, c.strip()) for c in _SANDBOX_COLS.split(",")]
        values[7] = int(record.ready)
        values[14] = _dumps(record.data)
        updates = ", ".join(f"{c} = excluded.{c}" for c in (x.strip() for x in _SANDBOX_COLS.split(","))
                            if c not in ("id", "created_at"))
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO sandboxes ({_SANDBOX_COLS}) VALUES ({', '.join('?' * 15)})"
                f" ON CONFLICT (id) DO UPDATE SET {updates}", *values)
        return record

    async def update_sandbox(self, sandbox_id: str, *, phase_was: str, **fields: Any) -> SandboxRecord | None:
        cols = [c.strip() for c in _SANDBOX_COLS.split(",")]
        bad = set(fields) - set(cols) | set(fields) & {"id", "created_at", "updated_at"}
        if bad:
            raise ValueError(f"not settable sandbox fields: {sorted(bad)}")
        fields = {**fields, "updated_at": now_iso()}
        values = [int(v) if k == "ready" else _dumps(v) if k == "data" else v for k, v in fields.items()]
        async with self._write() as db:
            n = await db.execute(f"UPDATE sandboxes SET {', '.join(f'{k} = ?' for k in fields)}"
                                 " WHERE id = ? AND phase = ?", *values, sandbox_id, phase_was)
            rows = await db.fetch(f"SELECT {_SANDBOX_COLS} FROM sandboxes WHERE id = ?", sandbox_id) if n else []
        return _sandbox(rows[0]) if rows else None

    async def touch_sandbox(self, sandbox_id: str, at: str) -> bool:
        async with self._write() as db:
            n = await db.execute("UPDATE sandboxes SET last_used_at = ? WHERE id = ?"
                                 " AND (last_used_at IS NULL OR last_used_at < ?)", at, sandbox_id, at)
        return n > 0

    async def get_sandbox(self, sandbox_id: str) -> SandboxRecord | None:
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_SANDBOX_COLS} FROM sandboxes WHERE id = ?", sandbox_id)
        return _sandbox(rows[0]) if rows else None

    async def list_sandboxes(self, *, backend: str | None = None) -> list[SandboxRecord]:
        where, args = ("WHERE backend = ?", [backend]) if backend else ("", [])
        async with self._read() as db:
            rows = await db.fetch(f"SELECT {_SANDBOX_COLS} FROM sandboxes {where} ORDER BY team, id", *args)
        return [_sandbox(r) for r in rows]

    async def delete_sandbox(self, sandbox_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM sandboxes WHERE id = ?", sandbox_id)

    async def orphan_sandbox_ids(self) -> set[str]:
        async with self._read() as db:
            # Two NOT EXISTS, not one with OR: each is an index lookup (primary key, sessions_by_sandbox).
            rows = await db.fetch("SELECT x.id FROM sandboxes x"
                                  " WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = x.session_id)"
                                  " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sandbox_ref = x.id)")
        return {r[0] for r in rows}

    async def sandboxes_left_unused(self, session_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(session_ids))
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        async with self._read() as db:
            rows = await db.fetch(
                f"SELECT x.id FROM sandboxes x WHERE (x.session_id IN ({marks})"
                f" OR x.id IN (SELECT sandbox_ref FROM sessions WHERE id IN ({marks})))"
                " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE (s.id = x.session_id OR s.sandbox_ref = x.id)"
                f" AND s.id NOT IN ({marks})) ORDER BY x.id", *ids, *ids, *ids)
        return [r[0] for r in rows]

    # --- relay tokens --------------------------------------------------------------------
    async def put_relay_token(self, token_hash: str, session_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM relay_tokens WHERE session_id = ?", session_id)
            await db.execute("INSERT INTO relay_tokens (token_hash, session_id, turn_id, created_at)"
                             " VALUES (?, ?, NULL, ?)", token_hash, session_id, now_iso())

    async def relay_grant(self, token_hash: str) -> tuple[str, str | None] | None:
        async with self._read() as db:
            rows = await db.fetch("SELECT session_id, turn_id FROM relay_tokens WHERE token_hash = ?", token_hash)
        return (rows[0][0], rows[0][1]) if rows else None

    async def set_relay_turn(self, session_id: str, turn_id: str | None) -> None:
        async with self._write() as db:
            await db.execute("UPDATE relay_tokens SET turn_id = ? WHERE session_id = ?", turn_id, session_id)

    async def revoke_relay_tokens(self, session_id: str) -> int:
        async with self._write() as db:
            return await db.execute("DELETE FROM relay_tokens WHERE session_id = ?", session_id)
