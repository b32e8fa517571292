"""Harness definitions: small TOML files that say how to install, run, resume and read a CLI.

The built-in definitions ship from the top-level `harnesses/` folder (one directory per
harness, `harness.toml` plus a `Dockerfile` for its cluster image); an editable install reads
it in place, a wheel installs it under `<prefix>/share/lap-tui/harnesses`. The user's own
definitions in `<config>/lap-tui/harnesses/<name>/harness.toml` load after them, so a harness
whose output format is known needs no code change, and a same-named one replaces a built-in.
See docs/HARNESSES.md for the format.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lap_tui.domain.errors import InvalidInput

_IN_REPO = Path(__file__).resolve().parents[2] / "harnesses"
_INSTALLED = Path(sys.prefix) / "share" / "lap-tui" / "harnesses"
BUNDLED = _IN_REPO if (_IN_REPO / "builtin" / "harness.toml").is_file() else _INSTALLED
KINDS = ("builtin", "cli")
APIS = ("chat", "responses", "messages")  # the gateway API a CLI speaks through the relay
EMITS = ("text", "delta", "tool", "tool_use", "tool_result", "usage", "error", "ignore")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")  # exact: no ranges
_NPM = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STATE_DIR = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class EventRule:
    """One line of the CLI's JSON output -> journal events. `when` matches dotted paths to
    values; `each` iterates an array (then `when` and the fields apply to each element)."""

    emit: str
    when: dict[str, Any] = field(default_factory=dict)
    each: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # our field -> dotted path


@dataclass(frozen=True)
class HarnessDefinition:
    name: str
    kind: str  # "builtin" | "cli"
    description: str = ""
    source: str = ""  # the file it came from
    api: str = "chat"
    npm: str = ""
    version: str = ""
    bin: str = ""  # a name under node_modules/.bin
    command: tuple[str, ...] = ()
    resume: tuple[str, ...] = ()
    session_id: str = ""  # dotted path of the CLI's session id in its events
    session_id_from: str = "output"  # "output" (read from an event) | "uuid" (lap-tui makes one)
    tool_id_scope: str = "session"  # "turn": the CLI numbers its tool calls afresh each turn
    state_dirs: tuple[str, ...] = ()  # under the workspace, kept with it
    env: dict[str, str] = field(default_factory=dict)
    env_json: dict[str, Any] = field(default_factory=dict)  # name -> a table sent as JSON
    timeout: float = 1800.0
    rules: tuple[EventRule, ...] = ()
    dockerfile: Path | None = None

    @property
    def is_cli(self) -> bool:
        return self.kind == "cli"


def user_harness_dirs(config_file: Path | None = None) -> list[Path]:
    from lap_tui.config import config_dir

    dirs = [config_dir() / "harnesses"]
    if config_file is not None and config_file.parent / "harnesses" not in dirs:
        dirs.append(config_file.parent / "harnesses")
    return dirs


def load_definitions(*dirs: Path) -> tuple[dict[str, HarnessDefinition], list[str]]:
    """Every definition (built-in first, then `dirs` in order; later wins) and the problems
    of the files that could not be read, one line each."""
    found: dict[str, HarnessDefinition] = {}
    problems: list[str] = []
    for d in (BUNDLED, *dirs):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*/harness.toml")):
            try:
                h = parse(tomllib.loads(path.read_text(encoding="utf-8")), path)
            except (OSError, ValueError, TypeError, InvalidInput) as exc:
                problems.append(f"harness {path}: {exc}")
                continue
            found[h.name] = h
    return found, problems


def parse(data: dict[str, Any], path: Path) -> HarnessDefinition:
    name = str(data.get("name") or path.parent.name)
    if not _NAME.match(name):
        raise InvalidInput(f"harness name {name!r} is not a DNS-1123 label", "use lowercase letters, digits, '-'")
    kind = str(data.get("kind", "cli"))
    if kind not in KINDS:
        raise InvalidInput(f"kind {kind!r} is unknown", "use builtin or cli")
    docker = path.parent / "Dockerfile"
    base = dict(name=name, kind=kind, description=str(data.get("description", "")), source=str(path),
                dockerfile=docker if docker.is_file() else None)
    if kind == "builtin":
        return HarnessDefinition(**base)
    install, run, events = data.get("install", {}), data.get("run", {}), data.get("events", {})
    api = str(data.get("api", "chat"))
    if api not in APIS:
        raise InvalidInput(f"api {api!r} is unknown", "use chat, responses or messages")
    npm, version, bin_ = str(install.get("npm", "")), str(install.get("version", "")), str(install.get("bin", ""))
    if not _NPM.match(npm):
        raise InvalidInput(f"install.npm {npm!r} is not an npm package name", 'e.g. "opencode-ai"')
    if not _VERSION.match(version):
        raise InvalidInput(f"install.version {version!r} is not an exact version", 'pin one, e.g. "1.18.33"')
    if not _NAME.match(bin_.replace("_", "-")) and not re.match(r"^[A-Za-z0-9._-]+$", bin_):
        raise InvalidInput(f"install.bin {bin_!r} is not a program name", 'e.g. "opencode"')
    command, resume = _argv(run.get("command"), "run.command"), _argv(run.get("resume"), "run.resume")
    state_dirs = tuple(str(s) for s in run.get("state_dirs", []))
    for s in state_dirs:
        if not _STATE_DIR.match(s) or ".." in s.split("/"):
            raise InvalidInput(f"state dir {s!r} is not a relative path inside the workspace", 'e.g. ".lap/x"')
    env = {str(k): str(v) for k, v in data.get("env", {}).items()}
    env_json = dict(data.get("env_json", {}))
    for k in (*env, *env_json):
        if not _ENV_NAME.match(k):
            raise InvalidInput(f"env name {k!r} is invalid", "letters, digits and '_'")
    rules = tuple(_rule(r) for r in events.get("map", []))
    sid_from = str(events.get("session_id_from", "output"))
    if sid_from not in ("output", "uuid"):
        raise InvalidInput(f"events.session_id_from {sid_from!r} is unknown", "use output or uuid")
    scope = str(events.get("tool_id_scope", "session"))
    if scope not in ("session", "turn"):
        raise InvalidInput(f"events.tool_id_scope {scope!r} is unknown", "use session or turn")
    timeout = float(run.get("timeout", 1800))
    if timeout <= 0:
        raise InvalidInput("run.timeout must be positive", "seconds, e.g. 1800")
    return HarnessDefinition(**base, api=api, npm=npm, version=version, bin=bin_, command=command, resume=resume,
                             session_id=str(events.get("session_id", "")), session_id_from=sid_from,
                             tool_id_scope=scope,
                             state_dirs=state_dirs, env=env, env_json=env_json, timeout=timeout, rules=rules)


def _argv(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise InvalidInput(f"{what} must be a list of strings", 'e.g. ["${bin}", "run", "${prompt}"]')
    return tuple(value)


def _rule(data: Any) -> EventRule:
    if not isinstance(data, dict):
        raise InvalidInput("every [[events.map]] entry must be a table", "see docs/HARNESSES.md")
    emit = str(data.get("emit", ""))
    if emit not in EMITS:
        raise InvalidInput(f"events.map emit {emit!r} is unknown", "use one of " + ", ".join(EMITS))
    when = data.get("when", {})
    if not isinstance(when, dict):
        raise InvalidInput("events.map when must be a table of path = value", 'e.g. when = { type = "text" }')
    fields = {str(k): str(v) for k, v in data.items() if k not in ("emit", "when", "each")}
    return EventRule(emit=emit, when=dict(when), each=str(data.get("each", "")), fields=fields)
