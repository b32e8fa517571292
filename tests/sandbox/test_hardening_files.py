"""Security issue 15.4: nothing lap-tui keeps (database, config, workspaces) is reachable by other host users.

The attack: a sandbox (uid 0 inside, root's files outside when lap-tui runs as root) makes a
setuid copy of bash in its workspace; another user of the host runs it and is root.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from lap_tui.config import load_settings
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store
from tests.conftest import need, run_cli
from tests.sandbox.conftest import Maker, forget_cgroups

NOBODY = "65534"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_base():
    """A base directory every user may traverse (pytest's own tmp dirs are owner-only)."""
    base = Path(tempfile.mkdtemp(prefix="lap-perm-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(script: str) -> subprocess.CompletedProcess:
    # Through a shell: setpriv execs its own argument before its capabilities are gone, so only
    # what a process of that user then runs shows what the user can reach.
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)


async def test_a_setuid_file_in_a_workspace_is_out_of_other_users_reach(require_bwrap, open_base):
    need(os.geteuid() == 0 and shutil.which("setpriv") is not None,
         "needs root and setpriv to act as another user (nobody)")
    environ = {"XDG_DATA_HOME": str(open_base / "data"), "XDG_CONFIG_HOME": str(open_base / "config"),
               "XDG_STATE_HOME": str(open_base / "state"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    settings = load_settings(environ, cwd=open_base)
    store = await open_store(settings.database_url)
    backend = LocalBackend(store, settings, environ=environ)
    try:
        sid = await Maker(store, backend).sandbox()
        r = await backend.exec(sid, ["sh", "-c", "cp /bin/bash rootsh && chmod 4755 rootsh && ls -l rootsh"])
        assert r.exit_code == 0, r.stderr
        rootsh = backend.workspace(sid) / "rootsh"
        assert os.stat(rootsh).st_mode & stat.S_ISUID  # the sandbox did make it
        # the positive control: nobody can run the system's bash, so a denial below is the dirs'
        assert as_nobody("/bin/bash -c 'id -u'").stdout.strip() == NOBODY

        r = as_nobody(f"'{rootsh}' -p -c id")
        assert "euid=0" not in r.stdout and r.returncode != 0, r.stdout
        data_dir = Path(settings.data_dir)
        assert mode(data_dir) == 0o700 and mode(backend.root) == 0o700 and mode(backend.root / sid) == 0o700

        # A data dir opened up (by hand, or by an older lap-tui): each sandbox's own dir still holds
        for d in (data_dir, backend.root):
            os.chmod(d, 0o755)
        r = as_nobody(f"'{rootsh}' -p -c id")
        assert "euid=0" not in r.stdout and r.returncode != 0, r.stdout
        # and the next start closes it again, saying so
        from lap_tui.config import secure_private_paths

        fixed = secure_private_paths(settings)
        assert len(fixed) == 2 and all("could be read by other users" in f for f in fixed), fixed
        assert mode(data_dir) == 0o700 and mode(backend.root) == 0o700
        assert secure_private_paths(settings) == []  # said once
    finally:
        await backend.close()
        forget_cgroups(backend)
        await store.close()


async def test_database_and_config_are_private(open_base):
    db = open_base / "new" / "lap.db"
    store = await open_store(f"sqlite://{db}")
    try:
        await store.list_agents()
        files = [p for p in db.parent.iterdir()]
        assert {p.name for p in files} >= {"lap.db", "lap.db-wal", "lap.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(db.parent) == 0o700
    finally:
        await store.close()


def test_existing_files_are_fixed_at_start_and_said_once(require_bwrap, cli_env, open_base):
    data, config = open_base / "data" / "lap-tui", open_base / "config" / "lap-tui"
    env = dict(cli_env, XDG_DATA_HOME=str(open_base / "data"), XDG_CONFIG_HOME=str(open_base / "config"),
               XDG_STATE_HOME=str(open_base / "state"))
    assert run_cli("agents", "list", env=env).returncode == 0  # creates the database
    config.mkdir(parents=True)
    (config / "config.toml").write_text('litellm_api_key = "sk-in-the-config"\n')
    # as an older lap-tui (or a umask of 022) left them
    for path, m in ((data, 0o755), (data / "lap.db", 0o644), (config / "config.toml", 0o644)):
        os.chmod(path, m)
    r = run_cli("agents", "list", env=env)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "could be read by other users" in line]
    assert len(said) == 3, r.stderr
    assert (mode(data), mode(data / "lap.db"), mode(config / "config.toml")) == (0o700, 0o600, 0o600)
    r = run_cli("agents", "list", env=env)
    assert "could be read by other users" not in r.stderr


def test_the_state_dir_is_made_private(open_base):
    from lap_tui.tui.state import UiState, save_state, state_path

    path = state_path(open_base / "state" / "lap-tui")
    save_state(path, UiState())
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
