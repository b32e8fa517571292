"""Dependency arrows point one way: tui/cli -> engine -> (store, gateway, harness, sandbox) -> domain.

Checked on the source (every import, also inside functions), so a lazy import cannot
sneak a wrong-way dependency in.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "lap_tui"

# layer -> the lap_tui layers it may import (besides itself and the package root).
ALLOWED = {
    "domain": set(),
    "config": {"domain"},
    "store": {"domain", "config"},
    "gateway": {"domain", "config"},
    "sandbox": {"domain", "config", "store"},  # sandbox state is kept in the store
    "harness": {"domain", "config", "sandbox", "gateway"},
    "engine": {"domain", "config", "store", "gateway", "sandbox", "harness"},
    "tui": {"domain", "config", "store", "gateway", "sandbox", "harness", "engine"},
    "cli": {"domain", "config", "store", "gateway", "sandbox", "harness", "engine", "tui"},
    "__main__": {"cli"},
}
UI_ONLY = ("textual", "rich")  # terminal rendering belongs to the tui alone


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0].removesuffix(".py") if rel else ""


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_layers_import_only_downwards():
    problems = []
    files = [p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG]
    assert len(files) > 10
    for path in files:
        layer = layer_of(path)
        if layer not in ALLOWED:
            problems.append(f"{path.relative_to(PKG)}: unknown layer {layer!r}; add it to ALLOWED")
            continue
        for mod in imports(path):
            top = mod.split(".")[0]
            if top in UI_ONLY and layer not in ("tui", "cli"):
                problems.append(f"{path.relative_to(PKG)} imports {mod} (UI libraries only under lap_tui/tui)")
            if top != "lap_tui" or mod == "lap_tui":
                continue
            target = mod.split(".")[1]
            if target != layer and target not in ALLOWED[layer]:
                problems.append(f"{path.relative_to(PKG)} ({layer}) imports {mod}")
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_wrong_way_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from lap_tui.tui.app import LapApp\n")
    assert "lap_tui.tui.app" in imports(bad)
