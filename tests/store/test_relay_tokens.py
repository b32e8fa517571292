"""The relay's session tokens in the store (SQLite and PostgreSQL): hashed, one per session,
charged to a turn, revoked with the session or its agent."""

from __future__ import annotations

from lap_tui.engine.relay_service import issue_token
from lap_tui.gateway.relay import hash_token
from tests.conftest import make_session


async def test_tokens_are_stored_hashed_and_revoked(store):
    s = await make_session(store)
    token = await issue_token(store, s.id)
    assert token.startswith("lap-") and len(token) > 40
    assert await store.relay_grant(token) is None  # only the hash is a key
    assert await store.relay_grant(hash_token(token)) == (s.id, None)
    await store.set_relay_turn(s.id, "t" * 32)
    assert await store.relay_grant(hash_token(token)) == (s.id, "t" * 32)
    newer = await issue_token(store, s.id)  # one live token per session
    assert await store.relay_grant(hash_token(token)) is None
    assert await store.relay_grant(hash_token(newer)) == (s.id, None)
    assert await store.revoke_relay_tokens(s.id) == 1
    assert await store.relay_grant(hash_token(newer)) is None


async def test_deleting_the_session_or_its_agent_revokes_its_token(store):
    s1 = await make_session(store, "a1")
    s2 = await make_session(store, "a2")
    t1, t2 = await issue_token(store, s1.id), await issue_token(store, s2.id)
    await store.delete_session(s1.id)
    assert await store.relay_grant(hash_token(t1)) is None
    assert await store.delete_agent(s2.agent_id) == 1
    assert await store.relay_grant(hash_token(t2)) is None
