"""The gateway package is cheap to import and respects the layering."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lap_tui.gateway
from tests.support.import_check import imports

PKG = Path(lap_tui.gateway.__file__).parent
ALLOWED_LAP = ("lap_tui.domain", "lap_tui.config", "lap_tui.gateway")
FORBIDDEN_TOP = {"textual", "kubernetes", "asyncpg", "aiosqlite"}


def test_importing_the_package_does_not_import_httpx():
    code = ("import sys, lap_tui.gateway, lap_tui.gateway.client; "
            "bad = [m for m in ('httpx', 'httpcore', 'anyio', 'textual') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def gateway_import_problems(root: Path) -> list[str]:
    """Wrong imports in root/gateway (root is a lap_tui package): relative, lazy and dynamic
    ones included (tests/support/import_check.py)."""
    files = sorted((root / "gateway").glob("*.py"))
    assert len(files) >= 4
    problems = []
    for f in files:
        names, unresolved = imports(f, root)
        problems += [f"{f.name}: {p}" for p in unresolved]
        for name in names:
            if name.startswith("lap_tui") and name != "lap_tui" and not name.startswith(ALLOWED_LAP):
                problems.append(f"{f.name} imports {name}")
            if name.split(".")[0] in FORBIDDEN_TOP:
                problems.append(f"{f.name} imports {name}")
    return problems


def test_gateway_imports_only_domain_config_and_itself():
    assert gateway_import_problems(PKG.parent) == []


@pytest.mark.parametrize("code", [
    "from ..store import sqlite\n",
    "from .. import engine\n",
    "from lap_tui import sandbox\n",
    "import importlib\nm = importlib.import_module('lap_tui.tui.app')\n",
    "def f():\n    import textual\n",
])
def test_the_check_catches_a_wrong_import(tmp_path: Path, code: str):
    root = tmp_path / "lap_tui"
    shutil.copytree(PKG.parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert gateway_import_problems(root) == []
    (root / "gateway" / "evil.py").write_text(code)
    assert any(p.startswith("evil.py") for p in gateway_import_problems(root))


def test_httpx_is_imported_only_inside_functions():
    for f in sorted(PKG.glob("*.py")):
        tree = ast.parse(f.read_text(), str(f))
        for node in tree.body:  # module level only (TYPE_CHECKING blocks are `if` nodes, skipped)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("httpx") for a in node.names), f.name
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("httpx"), f.name
