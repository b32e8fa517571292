"""The status bar keeps the whole reason for a ✗: cut on the line, whole in its tooltip."""

from __future__ import annotations

from lap_tui.gateway.errors import BASE_HINT, GatewayRejected
from lap_tui.tui.app import LapApp
from lap_tui.tui.widgets.status_bar import StatusBar
from tests.tui.conftest import seed, seed_basic, wait_for

REASON = ("the gateway answered HTTP 404 to POST http://127.0.0.1:4000/nope/v1/chat/completions; "
          "it said: no route for POST /nope/v1/chat/completions")


async def test_a_long_gateway_failure_is_whole_in_the_status_bar_tooltip(services_factory):
    services = services_factory()

    async def list_models() -> list[str]:
        raise GatewayRejected(REASON + "\x1b]0;pwned\x07", BASE_HINT, status=404)

    services.list_models = list_models
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.health.get("gateway", ("…",))[0] == "down", what="gateway marked down")
        bar = app.screen.query_one(StatusBar)
        await wait_for(pilot, lambda: bar.tooltip is not None, what="the status bar's tooltip")
        tip = str(bar.tooltip)
        assert "gateway: " + REASON in tip and BASE_HINT in tip  # every word, not cut at 40 characters
        assert "\x1b" not in tip and "\x07" not in tip
