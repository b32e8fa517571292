"""The store: agents, sessions, turns, the journal, leases and sandbox state.

One async interface (`Store`), two implementations chosen by the database URL. The drivers
are imported lazily so a start-up that does not need Postgres never pays for asyncpg.
"""

from __future__ import annotations

from lap_tui.config import check_database_url, sqlite_path
from lap_tui.store.base import Store


async def open_store(url: str, *, migrate: bool = True, create_dir: bool = True) -> Store:
    """Open the store at `url` and apply pending migrations (`migrate=False`: leave the schema
    alone, for `lap-tui migrate` itself). `create_dir=False`: a SQLite file whose folder is
    missing is refused (entry points pass `Settings.may_create_database_dir`). Raises
    StoreError or ConfigError with a fix."""
    check_database_url(url)
    if url.startswith("sqlite:"):
        from lap_tui.store.sqlite import SqliteStore

        store: Store = SqliteStore(sqlite_path(url), create_dir=create_dir)
    else:
        from lap_tui.store.postgres import PostgresStore

        store = PostgresStore(url)
    await store.open()
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store


__all__ = ["Store", "open_store"]
