"""PostgreSQL through an asyncpg pool. Migrations run under an advisory lock."""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import asyncpg

from lap_tui.config import mask_url_password
from lap_tui.domain.errors import StoreError
from lap_tui.domain.journal import JournalEvent
from lap_tui.store.sql import SqlStore

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x1A9_7001  # any constant shared by every lap-tui process
NOTIFY_CHANNEL = "lap_journal"
CONNECT_TIMEOUT = 5.0
APPEND_ATTEMPTS = 5  # a lost connection mid-append: tries in all, backing off up to 1 s (~2 s in all)

# Errors that mean the connection (not the statement) failed: the server went away.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    # asyncpg's word for a connection that broke mid-operation ("another operation is in progress")
    asyncpg.exceptions.InternalClientError,
)


@lru_cache(maxsize=512)
def _dollar(sql: str) -> str:
    """`?` placeholders -> `$1..$n` (our SQL has no '?' inside literals)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class _Db:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._conn.fetch(_dollar(sql), *args))

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(_dollar(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


class _Retrying:
    """A read that fails because the server restarted under a pooled connection is tried
    once more on a fresh connection (reads are idempotent; writes never are retried)."""

    def __init__(self, conn: asyncpg.Connection, pool: asyncpg.Pool | None) -> None:
        self._conn, self._pool = conn, pool

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        try:
            return await self._conn.fetch(query, *args)
        except _CONNECTION_ERRORS:
            if self._pool is None:
                raise
            async with self._pool.acquire() as fresh:
                return await fresh.fetch(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._conn.execute(query, *args)


class PostgresStore(SqlStore):
    kind = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.display_url = mask_url_password(url)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=8, timeout=CONNECT_TIMEOUT,
                                                   command_timeout=60)
        except Exception as exc:
            raise self._explain(exc) from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    def _explain(self, exc: BaseException) -> StoreError:
        where = self._where()
        if isinstance(exc, asyncpg.exceptions.InvalidPasswordError):
            return StoreError(f"PostgreSQL at {where} rejected the user or password",
                              "fix the credentials in LAP_DATABASE_URL")
        if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
            return StoreError(f"PostgreSQL at {where}: {exc}", "create the database (createdb) or fix LAP_DATABASE_URL")
        if isinstance(exc, _CONNECTION_ERRORS):
            detail = str(exc) or type(exc).__name__
            return StoreError(f"cannot reach PostgreSQL at {where}: {detail}",
                              "start the server, check the network, or fix LAP_DATABASE_URL")
        if isinstance(exc, asyncpg.PostgresError):
            return StoreError(f"PostgreSQL at {where}: {exc}")
        return StoreError(f"PostgreSQL at {where}: {type(exc).__name__}: {exc}")

    def _where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreError("the store is closed")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            raise self._explain(exc) from None

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Db]:
        async with self._conn() as conn:
            yield _Db(_Retrying(conn, self._pool))

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Db]:
        async with self._conn() as conn:
            async with conn.transaction():
                yield _Db(conn)

    @asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[_Db]:
        async with self._conn() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                async with conn.transaction():
                    yield _Db(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)

    async def _append(self, session_id: str, turn_id: str | None, kind: str, at: str, data: str,
                      holder: str | None, event_id: str) -> int | None:
        guard = " AND EXISTS (SELECT 1 FROM leases WHERE session_id = $1 AND holder = $7)" if holder else ""
        args: list[Any] = [session_id, at, turn_id, kind, data, event_id] + ([holder] if holder else [])
        # One statement, one round trip: bump the counter, insert, and notify followers on commit.
        sql = (f"WITH s AS (UPDATE sessions SET last_seq = last_seq + 1, updated_at = $2 WHERE id = $1{guard}"
               " RETURNING last_seq),"
               " e AS (INSERT INTO events (session_id, seq, turn_id, kind, at, data, event_id)"
               " SELECT $1, s.last_seq, $3::text, $4::text, $2, $5::text, $6::text FROM s RETURNING seq)"
               f" SELECT seq, pg_notify('{NOTIFY_CHANNEL}', $1 || ':' || seq::text) FROM e")
        if self._pool is None:
            raise StoreError("the store is closed")
        # A connection lost mid-append leaves us not knowing whether it committed (the reply
        # may be what was lost): try again on a fresh connection, and the event's id decides.
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn:
                    if attempt > 1:
                        seq = await conn.fetchval("SELECT seq FROM events WHERE event_id = $1", event_id)
                        if seq is not None:
                            return int(seq)  # it had committed: the reply was lost, not the event
                    try:
                        row = await conn.fetchrow(sql, *args)
                    except asyncpg.exceptions.UniqueViolationError as exc:
                        if getattr(exc, "constraint_name", None) != "events_by_event_id":
                            raise
                        return int(await conn.fetchval("SELECT seq FROM events WHERE event_id = $1", event_id))
                return int(row[0]) if row else None
            except _CONNECTION_ERRORS as exc:
                if attempt == APPEND_ATTEMPTS:
                    raise self._explain(exc) from None
                log.info("append to %s: the connection failed (%s); trying again", session_id, exc)
                await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0))
        raise AssertionError("unreachable")

    def _lease_now(self, now: float | None) -> tuple[str, list[Any]]:
        # The server's clock, never the writer's: two hosts whose clocks disagree still agree on
        # whether a lease has expired. An explicit `now` (tests) is taken as given.
        if now is not None:
            return "CAST(? AS DOUBLE PRECISION)", [float(now)]
        return "CAST(EXTRACT(EPOCH FROM now()) AS DOUBLE PRECISION)", []

    async def follow(self, session_id: str, *, after_seq: int = 0,
                     poll_interval: float = 0.1) -> AsyncIterator[JournalEvent]:
        """LISTEN/NOTIFY pushes appends from every process; a slow poll covers lost notices."""
        conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)  # LISTEN pins a connection
        wake = asyncio.Event()
        prefix = session_id + ":"

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload.startswith(prefix):
                wake.set()

        await conn.add_listener(NOTIFY_CHANNEL, notified)
        seen = after_seq
        try:
            while True:
                wake.clear()  # before reading, so an append during the read still wakes us
                events = await self.read_events(session_id, after_seq=seen, limit=1000)
                for ev in events:
                    seen = ev.seq
                    yield ev
                if len(events) == 1000:
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), timeout=max(poll_interval, 1.0))
                except asyncio.TimeoutError:
                    pass
        finally:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.exceptions.UniqueViolationError)
