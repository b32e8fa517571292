"""Postgres faults a team meets: a commit whose reply is lost, and hosts whose clocks disagree."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from lap_tui.store import open_store
from tests.conftest import make_session
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def direct(pg_url):
    store = await open_store(pg_url)
    yield store
    await store.close()


@pytest.fixture
async def proxy(pg_url):
    parts = urlsplit(pg_url)
    p = await TcpProxy(parts.hostname, parts.port).start()
    yield p
    await p.close()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def until(predicate, what: str, timeout: float = 60.0) -> None:
    """Wait for a condition (not for time), with a generous limit and a message."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await predicate():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_an_append_whose_commit_reply_is_lost_is_written_once(direct, proxy, pg_url):
    session = await make_session(direct)
    store = await open_store(through(pg_url, proxy.port))
    try:
        await store.append(session.id, "user.message", {"i": 0})
        proxy.withhold_replies()
        append = asyncio.create_task(store.append(session.id, "user.message", {"i": 1, "marker": "lost reply"}))

        async def committed() -> bool:
            return any(e.data.get("marker") for e in await direct.read_events(session.id))

        await until(committed, "the server to commit the append (seen on a direct connection)")
        assert not append.done()  # its reply is held back: it cannot know the append committed
        proxy.cut()  # ... and now the connection drops: the reply is lost for good
        event = await asyncio.wait_for(append, 60)
    finally:
        await store.close()
    events = await direct.read_events(session.id)
    assert [e.data for e in events] == [{"i": 0}, {"i": 1, "marker": "lost reply"}]  # once, not twice
    assert event.seq == events[1].seq == 2 and await direct.last_seq(session.id) == 2
    # The journal carries on from there.
    assert (await direct.append(session.id, "user.message", {"i": 2})).seq == 3


async def test_appending_the_same_event_id_twice_writes_it_once(store):
    session = await make_session(store)
    first = await store.append(session.id, "user.message", {"text": "hi"}, event_id="e" * 32)
    again = await store.append(session.id, "user.message", {"text": "hi"}, event_id="e" * 32)
    assert first.seq == again.seq == 1
    assert [e.seq for e in await store.read_events(session.id)] == [1] and await store.last_seq(session.id) == 1


async def test_lease_times_come_from_the_server_so_skewed_hosts_never_share_a_lease(direct, pg_url):
    ahead = await open_store(pg_url)
    behind = await open_store(pg_url)
    ahead.clock = lambda: time.time() + 3600  # this host's clock is an hour fast ...
    behind.clock = lambda: time.time() - 3600  # ... and this one's an hour slow
    try:
        s1 = await make_session(direct)
        assert await direct.acquire_lease(s1.id, "host-ok", 15)
        # On its own clock the lease expired an hour ago; on the server's it has 15 s to go.
        assert not await ahead.acquire_lease(s1.id, "host-ahead", 15)
        assert await direct.renew_lease(s1.id, "host-ok", 15)

        s2 = await make_session(direct)
        assert await behind.acquire_lease(s2.id, "host-behind", 15)
        # On the slow host's clock its lease would have expired an hour ago for everyone else.
        assert not await direct.acquire_lease(s2.id, "host-ok", 15)
        assert not await ahead.acquire_lease(s2.id, "host-ahead", 15)
        assert await behind.renew_lease(s2.id, "host-behind", 15)
        lease = await direct.get_lease(s2.id)
        assert lease.holder == "host-behind" and abs(lease.heartbeat_at - time.time()) < 60
    finally:
        await ahead.close()
        await behind.close()
