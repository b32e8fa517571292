"""A sandbox row written from a stale read never brings back a deleted sandbox or undoes a suspend.

Two backends on two store connections stand for two lap-tui processes. The first one's store
runs the other's change (delete, suspend) right before the first one's next sandbox-row write,
after its read: the order in which a slow process's read-then-write went wrong.
"""

from __future__ import annotations

import pytest

from lap_tui.domain.errors import NotFound
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store
from tests.sandbox.conftest import forget_cgroups

WRITES = {"put_sandbox", "update_sandbox", "touch_sandbox"}


class RaceBeforeWrite:
    """A store whose next sandbox-row write first awaits `hook` (the other process's change)."""

    def __init__(self, store) -> None:
        self._store = store
        self.hook = None
        self.raced = 0

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if name not in WRITES or self.hook is None:
            return attr

        async def racing(*args, **kwargs):
            hook, self.hook = self.hook, None
            await hook()
            self.raced += 1
            return await attr(*args, **kwargs)

        return racing


@pytest.fixture
async def two(require_bwrap, make, backend, sb_environ, sb_settings):
    """(a, its racing store, b): a and b are two lap-tui processes on one database."""
    other = await open_store(sb_environ["LAP_DATABASE_URL"])
    racing = RaceBeforeWrite(other)
    a = LocalBackend(racing, sb_settings, environ=sb_environ)
    yield a, racing, backend
    await a.close()
    forget_cgroups(a)
    await other.close()


async def test_last_used_after_a_command_does_not_bring_back_a_deleted_sandbox(two, make, sb_store):
    a, racing, b = two
    sid = await make.sandbox()
    a._state(sid).touched = 0  # due a last-used write after its next command
    racing.hook = lambda: b.delete(sid)
    r = await a.exec(sid, ["true"])
    assert r.exit_code == 0 and racing.raced == 1
    assert await sb_store.get_sandbox(sid) is None
    assert [s.id for s in await b.list()] == []


async def test_last_used_after_a_command_does_not_undo_a_suspend(two, make, sb_store):
    a, racing, b = two
    sid = await make.sandbox()
    a._state(sid).touched = 0
    racing.hook = lambda: b.suspend(sid)
    await a.exec(sid, ["true"])
    assert racing.raced == 1
    rec = await sb_store.get_sandbox(sid)
    assert (rec.phase, rec.ready) == ("Suspended", False) and rec.suspended_at


async def test_resume_on_use_does_not_bring_back_a_sandbox_deleted_meanwhile(two, make, sb_store):
    a, racing, b = two
    sid = await make.sandbox()
    await b.suspend(sid)
    racing.hook = lambda: b.delete(sid)  # a has read it Suspended; its resume is the next write
    with pytest.raises(NotFound):
        await a.exec(sid, ["true"])
    assert racing.raced == 1
    assert await sb_store.get_sandbox(sid) is None


async def test_suspend_does_not_bring_back_a_sandbox_deleted_meanwhile(two, make, sb_store):
    a, racing, b = two
    sid = await make.sandbox()
    racing.hook = lambda: b.delete(sid)
    with pytest.raises(NotFound):
        await a.suspend(sid)
    assert await sb_store.get_sandbox(sid) is None


async def test_resume_over_a_row_changed_then_deleted_meanwhile_makes_nothing(two, make, sb_store):
    # a read it Suspended; b resumed it, then deleted it: a's resume finds it gone.
    a, racing, b = two
    sid = await make.sandbox()
    await b.suspend(sid)

    async def other_process():
        await b.resume(sid)
        await b.delete(sid)

    racing.hook = other_process
    with pytest.raises(NotFound):
        await a.resume(sid)
    assert await sb_store.get_sandbox(sid) is None
