"""Shared fixtures: real stores (SQLite on a temp file, a throwaway PostgreSQL server)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.store import Store, open_store
from tests.support.pgserver import PgServer, find_pg_bin

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `bin/test`'s workers (pytest-xdist, `--dist loadgroup`): every test of the one
    `bin/k8s-dev` cluster runs on one worker, which starts and stops it; the others share out
    the rest (each worker has its own PostgreSQL server and temp dirs)."""
    for item in items:
        if "k8s_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("k8s"))


def need(ok: bool, what: str) -> None:
    """A real part a test needs: missing, it fails under CI=true and skips elsewhere."""
    if not ok:
        if IN_CI:
            pytest.fail(f"CI must run this test: {what}")
        pytest.skip(what)


@pytest.fixture
def require_bwrap() -> None:
    from lap_tui.sandbox import bwrap

    p = bwrap.probe()
    need(p.ok, f"bubblewrap isolation is unavailable: {p.problem} ({p.hint})")


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole run."""
    need(find_pg_bin() is not None, "PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql")
    srv = PgServer().start()
    yield srv
    srv.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the shared server, for one test."""
    return pg_server.createdb("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'lap.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both implementations."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'lap.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def store(store_url: str):
    s = await open_store(store_url)
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str):
    s = await open_store(sqlite_url)
    yield s
    await s.close()


async def make_session(store: Store, agent_name: str = "bot", team: str = "default") -> Session:
    """An agent (created if missing) and a new session with it."""
    try:
        agent = await store.get_agent(agent_name, team)
    except Exception:
        agent = await store.create_agent(Agent(id=new_id(), name=agent_name, team=team, model="test-model"))
    return await store.create_session(Session(id=new_id(), agent_id=agent.id))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the real `lap-tui` in a subprocess, isolated in tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_", "XDG_"))}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60,
            input: str | None = None, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lap_tui", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    cwd = cwd or Path(env["XDG_CONFIG_HOME"]).parent  # a neutral directory: no stray .env
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          input=input)
