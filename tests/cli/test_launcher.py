"""bin/lap-tui and bin/setup: a ready .venv starts at once; a first run shows what it installs on stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _checkout(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A copy of the launcher scripts, a stub .venv, and Pythons on PATH that log being asked."""
    root = tmp_path / "repo"
    (root / "bin").mkdir(parents=True)
    for name in ("lap-tui", "setup"):
        shutil.copy(ROOT / "bin" / name, root / "bin" / name)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    log = tmp_path / "probes.log"
    fake_bin = tmp_path / "fakebin"
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        _script(fake_bin / name, f'echo "{name} $*" >> "{log}"\nexit 0\n')
    _script(root / ".venv/bin/lap-tui", 'echo "lap-tui ran: $*"\n')
    # The venv's python: `-m pip install` prints like pip does (to stdout).
    _script(root / ".venv/bin/python", f'echo "venv-python $*" >> "{log}"\necho "Collecting textual"\n'
                                       'echo "Successfully installed lap-tui"\n')
    env = dict(os.environ, PATH=f"{fake_bin}:/usr/bin:/bin")
    env.pop("LAP_PYTHON", None)
    return root, env, log


def _stamp(root: Path, extras: str) -> None:
    cksum = subprocess.run(["cksum"], stdin=(root / "pyproject.toml").open("rb"), capture_output=True,
                           text=True, check=True).stdout.strip()
    (root / ".venv/.lap-setup").write_text(f"{cksum} extras={extras}\n")


def test_a_ready_venv_starts_without_probing_pythons(tmp_path):
    root, env, log = _checkout(tmp_path)
    for extras in ("", "test"):  # a venv set up for the tests serves the app too
        _stamp(root, extras)
        r = subprocess.run([root / "bin/lap-tui", "agents", "list"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (0, "lap-tui ran: agents list\n", "")
        assert not log.exists(), log.read_text()  # no Python was probed, nothing installed


def test_setup_says_what_it_installs_on_stderr_only(tmp_path):
    root, env, log = _checkout(tmp_path)
    (root / ".venv/.lap-setup").write_text("0 0 extras=\n")  # pyproject.toml changed since
    r = subprocess.run([root / "bin/lap-tui", "agents", "list", "--json"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "lap-tui ran: agents list --json\n"  # a script's JSON stays clean
    assert "installing . and its dependencies" in r.stderr and "Collecting textual" in r.stderr
    assert "Successfully installed lap-tui" in r.stderr and ".venv is ready" in r.stderr
    assert "--quiet" not in log.read_text() and "-m pip install" in log.read_text()
    # And the next start is the fast one.
    log.unlink()
    r = subprocess.run([root / "bin/lap-tui"], env=env, capture_output=True, text=True, timeout=60)
    assert (r.stdout, r.stderr) == ("lap-tui ran: \n", "") and not log.exists()
