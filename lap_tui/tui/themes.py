"""Themes from the top-level themes/ folder (TOML files of Textual Theme fields).

The user's own themes in CONFIG_DIR/themes/ are loaded after the bundled ones, so a file
with the same name replaces a bundled theme. A broken file is skipped with a message.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.theme import Theme

BUNDLED = Path(__file__).resolve().parents[2] / "themes"
DEFAULT = "lap-dark"
_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
           "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha", "variables")


def load_themes(*dirs: Path) -> tuple[list[Theme], list[str]]:
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for d in (BUNDLED, *dirs):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
                name = str(data.get("name") or path.stem)
                themes[name] = Theme(name=name, **{k: v for k, v in data.items() if k in _FIELDS})
            except (OSError, ValueError, TypeError) as exc:
                problems.append(f"theme {path}: {exc}")
    return list(themes.values()), problems
