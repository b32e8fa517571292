"""A sandbox whose session is gone is listed (and watched) as an orphan (issue 10 item 12)."""

from __future__ import annotations

from lap_tui.domain.sandbox import SandboxPhase


async def test_a_kept_sandbox_of_a_deleted_session_is_an_orphan(backend, make, sb_store):
    sid = await make.sandbox()
    other = await make.sandbox()
    events = backend.watch(poll_interval=0.05)
    seen = {(await anext(events)).status.id for _ in range(2)}
    assert seen == {sid, other}
    assert not any(s.orphan for s in await backend.list())
    session = (await sb_store.get_sandbox(sid)).session_id
    await sb_store.delete_session(session)  # as `sessions delete --keep-sandbox` leaves it
    [st] = [s for s in await backend.list() if s.id == sid]
    assert st.orphan and st.phase is SandboxPhase.RUNNING and st.warning.startswith("ORPHAN")
    assert not [s for s in await backend.list() if s.id == other][0].orphan
    ev = await anext(events)  # the live view learns it too
    assert (ev.type, ev.status.id, ev.status.orphan) == ("modified", sid, True)
    await events.aclose()
