"""Real CLI harnesses in real bubblewrap sandboxes, against the scripted gateway, through the relay.

The CLIs are the pinned npm packages of harnesses/*/harness.toml, installed by
`bin/install-harness-clis` (which `.ci/run` calls) into $LAP_HARNESS_DIR, by default
~/.cache/lap-tui/harness-clis. Missing, these tests fail under CI=true and skip elsewhere.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from lap_tui.harness.cli import harness_root, installed_bin
from lap_tui.harness.definition import load_definitions
from tests.conftest import need, run_cli
from tests.support.scripted_gateway import ScriptedGateway

MASTER_KEY = "sk-master-key-never-in-a-sandbox"
SANDBOX_SECRET = "ghp-sandbox-secret-value"
CLI_DIR = Path(os.environ.get("LAP_HARNESS_DIR") or Path.home() / ".cache" / "lap-tui" / "harness-clis")


@pytest.fixture(autouse=True)
def _needs_bwrap(require_bwrap):
    """Every harness test runs its CLI in a real sandbox."""


def need_cli(name: str) -> None:
    h = load_definitions()[0][name]
    need(installed_bin(harness_root(Path("."), {"LAP_HARNESS_DIR": str(CLI_DIR)}), h) is not None,
         f"the {name} CLI is not installed in {CLI_DIR}: run bin/install-harness-clis")


@pytest.fixture
def gw():
    with ScriptedGateway(models=["gpt-test"]) as g:
        yield g


@pytest.fixture
def hx_env(tmp_path: Path, gw: ScriptedGateway):
    """The environment of real `lap-tui` processes; the relay they start is stopped at the end."""
    # A short data dir: the relay's unix socket path must stay under 108 bytes.
    data = Path("/tmp") / f"lap-h-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
    env.update({"XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_STATE_HOME": str(tmp_path / "state"), "LITELLM_API_BASE": gw.base_url,
                "LITELLM_API_KEY": MASTER_KEY, "CONTAINER_ENV_GH_TOKEN": SANDBOX_SECRET,
                "LAP_HARNESS_DIR": str(CLI_DIR)})
    yield env
    _kill_keepers(data)  # a failed test may leave a CLI turn running: never past the test
    pidfile = data / "lap-tui" / "relay" / "relay.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    import shutil

    shutil.rmtree(data, ignore_errors=True)


def _kill_keepers(data: Path) -> None:
    marker = os.fsencode(str(data))
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if cmdline.startswith(b"/bin/sh\0-c\0") and b"\0lap-keeper\0" in cmdline and marker in cmdline:
            try:
                os.killpg(int(name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def cli(env, *args, timeout: float = 60) -> str:
    r = run_cli(*args, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout
