"""When no worker runs, the app does: a turn queued from a script (or cut off by a crash) and
left alone for a few seconds is driven by the open terminal, whatever screen it shows."""

from __future__ import annotations

import asyncio

import pytest

from lap_tui.domain.journal import TurnStatus
from lap_tui.engine.engine import Engine
from lap_tui.tui import app as app_module
from lap_tui.tui.app import LapApp
from tests.support.scripted_gateway import ScriptedGateway, stream
from tests.support.waiting import until
from tests.tui.conftest import SESSION_ID, seed, seed_basic, wait_for
from tests.tui.test_chat_flow import services_for

pytestmark = pytest.mark.usefixtures("require_bwrap")  # the engine's sandboxes are real


def standby_drivers() -> list[asyncio.Task]:
    """The app's standby driver: a task running lap_tui.engine.worker.run_worker."""
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "run_worker"]


@pytest.mark.parametrize("read_only", [False, True])
async def test_app_drives_turns_nobody_else_drives(tmp_path, monkeypatch, read_only):
    monkeypatch.setattr(app_module, "STANDBY_AFTER", 0.3)
    with ScriptedGateway(models=["gpt-test"]) as gw:
        gw.push(stream(["done by the terminal"]))
        services = services_for(tmp_path, gw)
        seed(services, seed_basic)
        app = LapApp(services, read_only=read_only)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.engine_ready.is_set(), what="engine")
            # What `lap-tui send SESSION TEXT` does: queue only.
            queuer = Engine(app.store, services.settings, sandboxes=lambda: None, gateway=lambda: None)
            turn_id = await queuer.queue(SESSION_ID, "from a script")
            # Start-up is over once the sandbox backend is in (health says so): the standby
            # driver, if any, was started before it.
            await wait_for(pilot, lambda: app.health["sandboxes"][0] != "…", what="the end of start-up")
            if read_only:  # changes nothing: no standby driver at all, and the turn stays queued
                assert standby_drivers() == []
                assert (await app.store.get_turn(turn_id)).status is TurnStatus.QUEUED
                return
            assert len(standby_drivers()) == 1  # the control: the same check sees it when there is one

            async def finished() -> bool:
                return (await app.store.get_turn(turn_id)).status.finished

            await until(finished, "the app to drive the turn")
            assert (await app.store.get_turn(turn_id)).status is TurnStatus.COMPLETED
            assert len(gw.chat_requests) == 1
