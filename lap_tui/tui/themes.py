"""Themes from the top-level themes/ folder (TOML files of Textual Theme fields).

The built-in themes ship from the repository's top-level `themes/` folder: an editable install
(the README's setup) reads it in place; a wheel installs it as data files under
`<prefix>/share/lap-tui/themes` (pyproject's `data-files`). The user's own themes in
`$XDG_CONFIG_HOME/lap-tui/themes/` (and beside a config file named by LAP_CONFIG_FILE) are
loaded after them, so a file with the same name replaces a built-in theme. A broken file is
skipped with a message.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from textual.theme import Theme

_IN_REPO = Path(__file__).resolve().parents[2] / "themes"
_INSTALLED = Path(sys.prefix) / "share" / "lap-tui" / "themes"
BUNDLED = _IN_REPO if (_IN_REPO / "lap-dark.toml").is_file() else _INSTALLED
DEFAULT = "lap-dark"
_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
           "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha", "variables")


def user_theme_dirs(config_file: Path | None) -> list[Path]:
    """Where the user's themes live: the config dir's themes/, and beside LAP_CONFIG_FILE."""
    from lap_tui.config import config_dir

    dirs = [config_dir() / "themes"]
    if config_file is not None and config_file.parent / "themes" not in dirs:
        dirs.append(config_file.parent / "themes")
    return dirs


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
