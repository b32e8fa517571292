"""Dependency arrows point one way: tui/cli -> engine -> (store, gateway, harness, sandbox) -> domain.

Checked on the source (tests/support/import_check.py): every import, also inside functions,
relative ones, names imported from a package (`from lap_tui import engine`) and dynamic ones
(`importlib.import_module`, `__import__`), so none can sneak a wrong-way dependency in. The
layers are docs/ARCHITECTURE.md's table; a sub-package (sandbox/k8s, tui/screens) belongs to
its top-level layer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.import_check import imports

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


def layer_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).parts
    return rel[0].removesuffix(".py") if rel else ""


def check(root: Path) -> list[str]:
    """Every wrong-way import in the package at `root` (empty when the layering holds)."""
    problems = []
    files = [p for p in root.rglob("*.py") if p.name != "__init__.py" or p.parent != root]
    assert len(files) > 10
    for path in files:
        where = path.relative_to(root)
        layer = layer_of(path, root)
        if layer not in ALLOWED:
            problems.append(f"{where}: unknown layer {layer!r}; add it to ALLOWED")
            continue
        mods, unresolved = imports(path, root)
        problems += [f"{where}: {p}" for p in unresolved]
        for mod in mods:
            top = mod.split(".")[0]
            if top in UI_ONLY and layer not in ("tui", "cli"):
                problems.append(f"{where} imports {mod} (UI libraries only under lap_tui/tui)")
            if top != root.name or mod == root.name:
                continue
            target = mod.split(".")[1]
            if not (Path(root, target).is_dir() or Path(root, target + ".py").is_file()):
                continue  # a name defined in lap_tui/__init__.py (__version__)
            if target != layer and target not in ALLOWED[layer]:
                problems.append(f"{where} ({layer}) imports {mod}")
    return problems


def test_layers_import_only_downwards():
    problems = check(PKG)
    assert not problems, "\n".join(problems)


# Each kind of wrong-way import, planted in lap_tui/domain (which may import nothing of ours).
PLANTED = {
    "relative, parent package": ("from .. import tui\n", "imports lap_tui.tui"),
    "relative, sibling layer": ("from ..engine import engine\n", "imports lap_tui.engine"),
    "relative, deep": ("from ..tui.screens import chat\n", "imports lap_tui.tui.screens"),
    "name from the package": ("from lap_tui import engine\n", "imports lap_tui.engine"),
    "absolute, in a function": ("def f():\n    from lap_tui.tui.app import LapApp\n", "imports lap_tui.tui.app"),
    "import_module": ("import importlib\n\ndef f():\n    return importlib.import_module('lap_tui.tui.app')\n",
                      "imports lap_tui.tui.app"),
    "bare import_module": ("from importlib import import_module\nm = import_module('lap_tui.engine')\n",
                           "imports lap_tui.engine"),
    "__import__": ("m = __import__('lap_tui.store.sqlite')\n", "imports lap_tui.store.sqlite"),
    "f-string": ("import importlib\nx = 'app'\nm = importlib.import_module(f'lap_tui.tui.{x}')\n",
                 "imports lap_tui.tui"),
    "relative import_module": ("import importlib\nm = importlib.import_module('..sandbox', 'lap_tui.domain')\n",
                               "imports lap_tui.sandbox"),
    "computed name": ("import importlib\nn = 'lap_tui.' + 'tui'\nm = importlib.import_module(n)\n",
                      "import_module() of a computed name"),
    "passed as a value": ("import asyncio, importlib\n\nasync def f():\n"
                          "    return await asyncio.to_thread(importlib.import_module, 'lap_tui.tui')\n",
                          "import_module passed as a value"),
    "textual below the tui": ("from textual.app import App\n", "imports textual.app (UI libraries"),
}


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pkg") / "lap_tui"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules"))
    assert check(root) == []
    return root


@pytest.mark.parametrize("kind", PLANTED)
def test_the_check_catches_each_kind_of_wrong_way_import(clean_copy: Path, kind: str):
    code, expected = PLANTED[kind]
    evil = clean_copy / "domain" / "evil.py"
    evil.write_text(code)
    try:
        problems = check(clean_copy)
    finally:
        evil.unlink()
    assert any(p.startswith("domain/evil.py") and expected in p for p in problems), (kind, problems)


def test_allowed_imports_are_not_flagged(clean_copy: Path):
    """The resolver does not over-reach: these stay inside domain's rules."""
    ok = clean_copy / "domain" / "fine.py"
    ok.write_text("from . import ids\nfrom .ids import new_id\nfrom lap_tui import __version__\n"
                  "import importlib\nm = importlib.import_module('lap_tui.domain.ids')\n")
    try:
        assert check(clean_copy) == []
    finally:
        ok.unlink()
