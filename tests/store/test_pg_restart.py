"""A PostgreSQL restart: a clear message at worst, no committed work lost, and the store
carries on by itself once the server is back."""

from __future__ import annotations

import pytest

from lap_tui.domain.errors import StoreError
from lap_tui.store import open_store
from tests.conftest import make_session, need
from tests.support.pgserver import PgServer, find_pg_bin


@pytest.fixture
def own_pg():
    need(find_pg_bin() is not None, "PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql")
    srv = PgServer().start()
    yield srv
    srv.destroy()


async def test_store_survives_a_server_restart(own_pg):
    store = await open_store(own_pg.createdb("restart"))
    try:
        s = await make_session(store)
        for i in range(5):
            await store.append(s.id, "x", {"i": i})
        own_pg.restart()
        assert len(await store.read_events(s.id)) == 5  # reads retry on a fresh connection
        try:
            await store.append(s.id, "x", {"i": 5})
        except StoreError as exc:  # a write is never retried blindly: it says what happened
            assert "PostgreSQL" in str(exc)
            await store.append(s.id, "x", {"i": 5})
        assert [e.data["i"] for e in await store.read_events(s.id)] == list(range(6))
        own_pg.stop()
        with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
            await store.append(s.id, "x", {"i": 6})
    finally:
        await store.close()
