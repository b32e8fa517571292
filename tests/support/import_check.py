"""Every import a module of ours makes, as absolute module names, read from its source.

Shared by the layering checks (tests/test_layers.py, tests/gateway/test_imports.py). It sees
what `ast` alone would miss: relative imports (`from .. import tui`), names imported from a
package (`from lap_tui import engine` imports the module `lap_tui.engine`), imports inside
functions, and dynamic imports (`importlib.import_module`, `__import__`, and the app's own
`import_in_thread`) whose name is a string constant or an f-string with a constant prefix.
A dynamic import whose target cannot be read from the source is reported as a problem, except
inside a wrapper that only forwards its argument (its call sites are checked instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

# Functions that import the module named by their first argument.
DYNAMIC = {"import_module", "__import__", "import_in_thread"}


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """('lap_tui.tui.app', False) for root/tui/app.py; the flag says whether it is a package."""
    rel = path.relative_to(root).with_suffix("")
    parts = [root.name, *rel.parts]
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts.pop()
    return ".".join(parts), is_pkg


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _constant_prefix(arg: ast.expr) -> tuple[str | None, bool]:
    """The name a dynamic import asks for: (text, complete?)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value, True
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value), False
    return None, False


def imports(path: Path, root: Path) -> tuple[list[str], list[str]]:
    """(absolute module names imported by `path`, problems the check cannot resolve).

    `root` is the package directory (its name is the top-level package, e.g. lap_tui)."""
    me, is_pkg = module_name(path, root)
    package = me if is_pkg else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[str] = []
    problems: list[str] = []
    wrappers = [n for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in DYNAMIC]
    inside_wrapper = {id(n) for w in wrappers for n in ast.walk(w)}
    called = {id(c.func) for c in ast.walk(tree) if isinstance(c, ast.Call)}

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                if not base or base[0] != root.name:
                    problems.append(f"line {node.lineno}: relative import above the package")
                    continue
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            # `from pkg import name` imports pkg.name when name is a module of ours.
            if mod == root.name or mod.startswith(root.name + "."):
                for a in node.names:
                    sub = Path(root, *mod.split(".")[1:], a.name)
                    if sub.is_dir() or sub.with_suffix(".py").is_file():
                        out.append(f"{mod}.{a.name}")
        elif isinstance(node, ast.Call) and _callee(node.func) in DYNAMIC:
            name, whole = _constant_prefix(node.args[0]) if node.args else (None, False)
            if name is None:
                if id(node) not in inside_wrapper:
                    problems.append(f"line {node.lineno}: {_callee(node.func)}() of a computed name")
                continue
            if name.startswith("."):  # import_module(".x", package=...): relative to the caller
                level = len(name) - len(name.lstrip("."))
                base = package.split(".")[: len(package.split(".")) - (level - 1)]
                name = ".".join(base + ([name.lstrip(".")] if name.lstrip(".") else []))
            out.append(name if whole else name.rstrip("."))
        elif (isinstance(node, (ast.Name, ast.Attribute)) and _callee(node) in DYNAMIC
              and id(node) not in inside_wrapper):
            # The function passed as a value (to_thread(importlib.import_module, ...)): its
            # argument is out of sight. (A direct call's func is this same node: checked above.)
            if id(node) not in called:
                problems.append(f"line {node.lineno}: {_callee(node)} passed as a value")
    return out, problems
