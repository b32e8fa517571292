"""A wheel carries what a non-editable install needs: migrations and the built-in themes."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_migrations_and_themes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("lap_tui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    themes = {p.name for p in (ROOT / "themes").glob("*.toml")}
    assert themes >= {"lap-dark.toml", "lap-light.toml", "lap-mono.toml"}
    shipped = {n.rsplit("/", 1)[-1] for n in names if "/data/share/lap-tui/themes/" in n}
    assert shipped == themes
    assert any(n.startswith("lap_tui/store/migrations/") and n.endswith(".sql") for n in names)


def test_wheel_ships_harness_definitions_and_the_forwarder(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("lap_tui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"{p.parent.name}/{p.name}" for p in (ROOT / "harnesses").glob("*/*")}
    assert {"builtin/harness.toml", "opencode/harness.toml", "opencode/Dockerfile", "codex/harness.toml",
            "claude-code/harness.toml"} <= want
    shipped = {n.split("/data/share/lap-tui/harnesses/", 1)[1] for n in names if "/data/share/lap-tui/harnesses/" in n}
    assert shipped == want
    assert "lap_tui/harness/relay_forward.js" in names
