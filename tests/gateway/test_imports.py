"""The gateway package is cheap to import and respects the layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lap_tui.gateway

PKG = Path(lap_tui.gateway.__file__).parent
ALLOWED_LAP = ("lap_tui.domain", "lap_tui.config", "lap_tui.gateway")
FORBIDDEN_TOP = {"textual", "kubernetes", "asyncpg", "aiosqlite"}


def test_importing_the_package_does_not_import_httpx():
    code = ("import sys, lap_tui.gateway, lap_tui.gateway.client; "
            "bad = [m for m in ('httpx', 'httpcore', 'anyio', 'textual') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_gateway_imports_only_domain_config_and_itself():
    files = sorted(PKG.glob("*.py"))
    assert len(files) >= 4
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("lap_tui"):
                    assert name.startswith(ALLOWED_LAP), f"{f.name} imports {name}"
                assert name.split(".")[0] not in FORBIDDEN_TOP, f"{f.name} imports {name}"


def test_httpx_is_imported_only_inside_functions():
    for f in sorted(PKG.glob("*.py")):
        tree = ast.parse(f.read_text(), str(f))
        for node in tree.body:  # module level only (TYPE_CHECKING blocks are `if` nodes, skipped)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("httpx") for a in node.names), f.name
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("httpx"), f.name
