"""Fixtures for sandbox tests: a real store, real bubblewrap, a data directory per test.

Under CI=true a missing or unusable bubblewrap fails these tests; elsewhere they skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.sandbox import ensure_for_session
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store

SECRET = "s3cr3t-value-0f-the-team"
GATEWAY_KEY = "sk-gateway-master-key-123"


@pytest.fixture
def sb_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "LAP_DATABASE_URL": f"sqlite://{tmp_path / 'lap.db'}",
        "CONTAINER_ENV_API_TOKEN": SECRET, "CONTAINER_ENV_REGION": "eu-west",
        "LITELLM_API_KEY": GATEWAY_KEY, "AGENT_VISIBLE": "yes", "NOT_NAMED": "never",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


@pytest.fixture
def sb_settings(sb_environ: dict[str, str], tmp_path: Path):
    return load_settings(sb_environ, cwd=tmp_path)


@pytest.fixture
async def sb_store(sb_environ: dict[str, str]):
    store = await open_store(sb_environ["LAP_DATABASE_URL"])
    yield store
    await store.close()


@pytest.fixture
async def backend(require_bwrap, sb_store, sb_settings, sb_environ):
    b = LocalBackend(sb_store, sb_settings, environ=sb_environ)
    yield b
    await b.close()
    forget_cgroups(b)


def forget_cgroups(b: LocalBackend) -> None:
    """Sandboxes of a test outlive it only as empty cgroups; remove those (delete would too)."""
    for sid in os.listdir(b.root) if b.root.is_dir() else ():
        b._cgroups.remove(sid)


class Maker:
    """Creates agents and sessions and gives each session its sandbox."""

    def __init__(self, store, backend) -> None:
        self.store, self.backend, self.n = store, backend, 0

    async def session(self, *, team: str = "default", context: str | None = None, **sandbox) -> Session:
        self.n += 1
        agent = await self.store.create_agent(Agent(id=new_id(), name=f"agent-{self.n}", team=team, model="m",
                                                    sandbox=SandboxSettings(**sandbox).validate()))
        session = await self.store.create_session(Session(id=new_id(), agent_id=agent.id, context_key=context))
        return session

    async def sandbox(self, *, team: str = "default", context: str | None = None, **sandbox) -> str:
        session = await self.session(team=team, context=context, **sandbox)
        agent = await self.store.get_agent_by_id(session.agent_id)
        return (await ensure_for_session(self.backend, self.store, agent, session)).id


@pytest.fixture
def make(sb_store, backend) -> Maker:
    return Maker(sb_store, backend)


def live_processes(marker: str) -> list[str]:
    """Processes (not zombies) whose command line holds `marker`."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{name}: {cmd}")
    return found
