"""Engine fixtures: a real store, the scripted gateway over real HTTP, real bubblewrap sandboxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lap_tui.config import load_settings
from lap_tui.engine.engine import EngineOptions
from lap_tui.engine.services import build_engine
from tests.support.scripted_gateway import ScriptedGateway

MASTER_KEY = "sk-master-key-never-in-a-sandbox"
SANDBOX_SECRET = "ghp-sandbox-secret-value"


@pytest.fixture(autouse=True)
def _needs_bwrap(require_bwrap):
    """Every engine test runs tools in real sandboxes."""


@pytest.fixture
def gw():
    with ScriptedGateway(models=["gpt-test"]) as g:
        yield g


@pytest.fixture
def engine_env(tmp_path: Path, gw: ScriptedGateway) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"), "LITELLM_API_BASE": gw.base_url,
            "LITELLM_API_KEY": MASTER_KEY, "CONTAINER_ENV_GH_TOKEN": SANDBOX_SECRET}


@pytest.fixture
def settings(engine_env, tmp_path):
    return load_settings(engine_env, cwd=tmp_path)


@pytest.fixture
async def engine(store, settings):
    eng = build_engine(settings, store, options=EngineOptions(lease_ttl=5.0))
    yield eng
    await eng.close()
