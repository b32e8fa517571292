"""SQLite through aiosqlite: WAL, a busy timeout, one writer and one reader connection."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiosqlite

from lap_tui.domain.errors import StoreError
from lap_tui.store.sql import SqlStore

BUSY_TIMEOUT_MS = 10_000


class _Db:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, args))

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self._conn.execute(sql, args)
        return cur.rowcount


class SqliteStore(SqlStore):
    kind = "sqlite"

    def __init__(self, path: str, *, create_dir: bool = True) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self._create_dir = create_dir
        self.display_url = f"sqlite://{self.path}"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # One connection runs one statement stream: a lock keeps transactions of
        # concurrent tasks from interleaving on it.
        self._wlock = asyncio.Lock()
        self._rlock = asyncio.Lock()

    async def open(self) -> None:
        if not self._create_dir and not self.path.parent.is_dir():
            raise StoreError(f"the folder {self.path.parent} of the SQLite database does not exist",
                             "fix LAP_DATABASE_URL, or set LAP_CREATE_DB=1 (or `lap-tui migrate --create`) "
                             "to create it")
        try:
            # Private from the start: the database holds every team's sessions and tokens.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create_private(self.path)  # SQLite gives its -wal and -shm files the same mode
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {self.path}: {exc.strerror}",
                             "check its permissions or set LAP_DATABASE_URL") from None
        try:
            self._writer = await self._connect()
            # WAL lets readers (other terminals, observers) run beside the writer.
            await self._writer.execute_fetchall("PRAGMA journal_mode=WAL")
            self._reader = await self._connect()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise self._explain(exc) from None

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # NORMAL in WAL mode: a crash of the process loses nothing committed; only a power
            # cut may lose the last commits (the file stays consistent). FULL costs an fsync per
            # event; see docs/ARCHITECTURE.md.
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            # Touch the file so corruption is found now rather than mid-operation.
            await conn.execute_fetchall("SELECT COUNT(*) FROM sqlite_master")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def _explain(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "readonly" in text or "read-only" in text or self._read_only():
            return StoreError(f"the database {self.path} is read-only",
                              "make it and its directory writable, or set LAP_DATABASE_URL to another file")
        if "not a database" in text or "malformed" in text:
            return StoreError(f"the database {self.path} is corrupt or not a SQLite file",
                              "restore it from a backup, or move it away to start afresh")
        if "locked" in text or "busy" in text:
            return StoreError(f"the database {self.path} stayed locked by another process",
                              "retry; if it persists, look for a stuck lap-tui process")
        if "unable to open" in text:
            return StoreError(f"the database {self.path} cannot be opened",
                              "check that its directory exists and is writable")
        return StoreError(f"database {self.path}: {text}")

    def _read_only(self) -> bool:
        # WAL needs the file and its directory (for -wal and -shm) writable.
        if not self.path.exists():
            return False
        return not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Db]:
        if self._reader is None:
            raise StoreError("the store is closed")
        async with self._rlock:
            try:
                yield _Db(self._reader)
            except sqlite3.OperationalError as exc:
                raise self._explain(exc) from None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Db]:
        if self._writer is None:
            raise StoreError("the store is closed")
        async with self._wlock:
            conn = self._writer
            try:
                # IMMEDIATE takes the write lock now, so two processes queue on the busy
                # timeout instead of failing at commit.
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._explain(exc) from None
            try:
                yield _Db(conn)
            except BaseException as exc:
                await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._explain(exc) from None
                raise
            else:
                try:
                    await conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    await conn.execute("ROLLBACK")
                    raise self._explain(exc) from None

    def _migration_lock(self):  # type: ignore[override]
        return self._write()  # BEGIN IMMEDIATE already excludes every other writer

    async def _append(self, session_id: str, turn_id: str | None, kind: str, at: str, data: str,
                      holder: str | None, event_id: str) -> int | None:
        if self._writer is None:
            raise StoreError("the store is closed")
        async with self._wlock:
            # The whole transaction in one hop to the connection's thread (aiosqlite's
            # `_execute`): four hops cost more than the SQL itself on the hot path.
            try:
                seq = await self._writer._execute(_append_tx, self._writer._conn, session_id, turn_id, kind, at,
                                                  data, holder, event_id)
            except sqlite3.OperationalError as exc:
                raise self._explain(exc) from None
        return seq

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


def _create_private(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        pass


def _append_tx(conn: sqlite3.Connection, session_id: str, turn_id: str | None, kind: str, at: str, data: str,
               holder: str | None, event_id: str) -> int | None:
    """Runs in the connection's thread: bump the session's counter and insert, atomically.
    An event id already in the journal is that event's seq: appending it again writes nothing."""
    guard, args = "", [at, session_id]
    if holder is not None:
        guard = " AND EXISTS (SELECT 1 FROM leases WHERE session_id = ? AND holder = ?)"
        args += [session_id, holder]
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(f"UPDATE sessions SET last_seq = last_seq + 1, updated_at = ? WHERE id = ?{guard}"
                           " RETURNING last_seq", args).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            return None
        conn.execute("INSERT INTO events (session_id, seq, turn_id, kind, at, data, event_id)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", (session_id, row[0], turn_id, kind, at, data, event_id))
        conn.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "event_id" not in str(exc):
            raise
        return int(conn.execute("SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()[0])
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return int(row[0])
