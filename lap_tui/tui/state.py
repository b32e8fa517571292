"""UI state kept between runs: screen, agent, session, scroll, drafts, theme.

A small JSON file in Settings.state_dir, written atomically (temp file + rename) so a crash
mid-write leaves the previous state. Unknown or broken content is ignored, never fatal.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FILE_NAME = "ui-state.json"
VERSION = 1
MAX_DRAFTS = 50  # drafts of sessions long gone should not pile up
SCREENS = ("agents", "sessions", "chat", "sandboxes", "sandbox_detail")


@dataclass
class UiState:
    screen: str = "agents"
    agent_id: str | None = None  # selected agent; also the agent of the sessions view
    session_id: str | None = None
    sandbox_id: str | None = None
    sessions_all: bool = False  # the sessions view lists every agent's sessions
    chat_follow: bool = True  # the chat was at its bottom
    chat_scroll_from_end: float = 0.0  # lines above the bottom when not following
    drafts: dict[str, str] = field(default_factory=dict)
    theme: str | None = None  # chosen with :theme
    theme_config: str | None = None  # the config's theme when :theme was used

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> UiState:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return cls()
        state = cls()
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                default = getattr(state, f.name)
                if default is None or isinstance(value, type(default)):
                    setattr(state, f.name, value)
        if state.screen not in SCREENS:
            state.screen = "agents"
        state.drafts = {str(k): str(v) for k, v in state.drafts.items() if v}
        return state

    def set_draft(self, session_id: str, text: str) -> None:
        self.drafts.pop(session_id, None)
        if text.strip():
            self.drafts[session_id] = text  # re-inserted last: dicts keep insertion order
        while len(self.drafts) > MAX_DRAFTS:
            self.drafts.pop(next(iter(self.drafts)))


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


def state_for(path: Path | None, *, view: str | None = None, read_only: bool = False) -> Path | None:
    """The working app's state file, or one of its own for a `--read-only` or `--view` run: a
    dashboard pane must not change where the working app reopens, nor take its drafts."""
    parts = (["read-only"] if read_only else []) + ([f"view-{view}"] if view else [])
    if path is None or not parts:
        return path
    return path.with_name(f"{path.stem}.{'.'.join(parts)}{path.suffix}")


def load_state(path: Path) -> UiState:
    try:
        return UiState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return UiState()


def save_state(path: Path, state: UiState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # drafts: this user's only
    data = json.dumps(state.to_dict(), ensure_ascii=False, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=".ui-state.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
