"""When no worker runs, the app does: a turn queued from a script (or cut off by a crash) and
left alone for a few seconds is driven by the open terminal, whatever screen it shows."""

from __future__ import annotations


import pytest

from lap_tui.domain.journal import TurnStatus
from lap_tui.engine.engine import Engine
from lap_tui.tui import app as app_module
from lap_tui.tui.app import LapApp
from tests.support.scripted_gateway import ScriptedGateway, stream
from tests.tui.conftest import SESSION_ID, seed, seed_basic, wait_for
from tests.tui.test_chat_flow import services_for

pytestmark = pytest.mark.usefixtures("require_bwrap")  # the engine's sandboxes are real


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
            if read_only:
                await pilot.pause(1.5)
                assert (await app.store.get_turn(turn_id)).status is TurnStatus.QUEUED  # changes nothing
                return
            for _ in range(200):
                if (await app.store.get_turn(turn_id)).status.finished:
                    break
                await pilot.pause(0.05)
            assert (await app.store.get_turn(turn_id)).status is TurnStatus.COMPLETED
            assert len(gw.chat_requests) == 1
