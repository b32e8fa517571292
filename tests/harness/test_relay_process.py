"""The relay as its own process: started on demand, found again, replaced when settings change."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from lap_tui.config import load_settings
from lap_tui.engine.relay_service import ensure_relay, issue_token
from lap_tui.store import open_store
from tests.conftest import make_session
from tests.support.scripted_gateway import ScriptedGateway


async def test_a_relay_started_with_other_settings_is_replaced(hx_env, monkeypatch):
    for k, v in hx_env.items():
        monkeypatch.setenv(k, v)
    home = Path(hx_env["XDG_DATA_HOME"]) / "lap-tui" / "relay"
    first = await ensure_relay(load_settings())
    pid1 = (home / "relay.pid").read_text().strip()
    assert await ensure_relay(load_settings()) == first and (home / "relay.pid").read_text().strip() == pid1
    with ScriptedGateway(models=["moved-model"]) as moved:
        monkeypatch.setenv("LITELLM_API_BASE", moved.base_url)  # the gateway moved
        settings = load_settings()
        sock = await ensure_relay(settings)
        assert (home / "relay.pid").read_text().strip() != pid1
        assert not os.path.exists(f"/proc/{pid1}")  # the old relay is gone
        store = await open_store(settings.database_url)
        try:
            token = await issue_token(store, (await make_session(store)).id)
        finally:
            await store.close()
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock)), base_url="http://r") as c:
            r = await c.get("/v1/models", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "moved-model" in r.text
