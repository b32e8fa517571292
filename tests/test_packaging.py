"""A wheel carries what a non-editable install needs: migrations, the built-in themes, the
harness definitions and the relay forwarder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One build for the module, on one worker: setuptools builds in the source tree (build/,
# *.egg-info), so two builds at once (two pytest-xdist workers) trip over each other.
pytestmark = pytest.mark.xdist_group("wheel")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("lap_tui-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_wheel_ships_migrations_and_themes(wheel_names: set[str]) -> None:
    themes = {p.name for p in (ROOT / "themes").glob("*.toml")}
    assert themes >= {"lap-dark.toml", "lap-light.toml", "lap-mono.toml"}
    shipped = {n.rsplit("/", 1)[-1] for n in wheel_names if "/data/share/lap-tui/themes/" in n}
    assert shipped == themes
    assert any(n.startswith("lap_tui/store/migrations/") and n.endswith(".sql") for n in wheel_names)


def test_wheel_ships_harness_definitions_and_the_forwarder(wheel_names: set[str]) -> None:
    want = {f"{p.parent.name}/{p.name}" for p in (ROOT / "harnesses").glob("*/*")}
    assert {"builtin/harness.toml", "opencode/harness.toml", "opencode/Dockerfile", "codex/harness.toml",
            "claude-code/harness.toml"} <= want
    shipped = {n.split("/data/share/lap-tui/harnesses/", 1)[1]
               for n in wheel_names if "/data/share/lap-tui/harnesses/" in n}
    assert shipped == want
    assert "lap_tui/harness/relay_forward.js" in wheel_names
