"""CLI harnesses: where a definition's CLI is installed, and the command and environment of
one turn (pure, apart from looking at the install directory).

Installed CLIs live on the host under `$LAP_HARNESS_DIR` (default `<data dir>/harnesses`),
one npm prefix per package and version (`opencode-ai-1.18.33/node_modules/.bin/opencode`). A local
sandbox sees that prefix read-only at /lap/cli, the relay's socket directory at /lap/relay
and lap-tui's forwarder script at /lap/relay-forward.js; a cluster image has the CLI on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lap_tui.domain.errors import InvalidInput, LapError
from lap_tui.domain.sandbox import WORKSPACE
from lap_tui.harness.definition import HarnessDefinition

CLI_MOUNT = "/lap/cli"
RELAY_MOUNT = "/lap/relay"
FORWARDER_MOUNT = "/lap/relay-forward.js"
FORWARDER = Path(__file__).with_name("relay_forward.js")
RELAY_PORT = 4141  # inside the sandbox's own network namespace: nothing else listens there
RELAY_URL = f"http://127.0.0.1:{RELAY_PORT}"
_TURN_ID = re.compile(r"^[0-9a-f]{8,64}$")
TURNS_DIR = ".lap/turns"  # under the workspace: one directory per turn with its output


class HarnessNotInstalled(LapError):
    pass


def harness_root(data_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env["LAP_HARNESS_DIR"]) if env.get("LAP_HARNESS_DIR") else Path(data_dir) / "harnesses"


def install_dir(root: Path, h: HarnessDefinition) -> Path:
    """One npm prefix per package and version, shared by every definition that uses it."""
    return root / f"{h.npm.lstrip('@').replace('/', '+')}-{h.version}"


def installed_bin(root: Path, h: HarnessDefinition) -> Path | None:
    p = install_dir(root, h) / "node_modules" / ".bin" / h.bin
    return p if h.is_cli and os.access(p, os.X_OK) else None


def install(root: Path, h: HarnessDefinition, *, npm: str | None = None) -> Path:
    """npm-install the pinned CLI into its own prefix (atomically: a half-done install never
    counts as installed)."""
    if not h.is_cli:
        raise InvalidInput(f"harness {h.name} has nothing to install", "it is built in")
    if installed_bin(root, h):
        return install_dir(root, h)
    npm = npm or shutil.which("npm")
    if not npm:
        raise HarnessNotInstalled("npm is not installed", "install Node.js and npm (e.g. apt-get install npm)")
    target = install_dir(root, h)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    out = subprocess.run([npm, "install", "--prefix", str(tmp), "--no-audit", "--no-fund", "--no-save",
                          f"{h.npm}@{h.version}"], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise HarnessNotInstalled(f"npm could not install {h.npm}@{h.version}: {last}", "check npm's registry access")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    if not installed_bin(root, h):
        raise HarnessNotInstalled(f"{h.npm}@{h.version} installed no program {h.bin!r}", "fix install.bin")
    return target


@dataclass(frozen=True)
class TurnPlan:
    argv: list[str]  # run inside the sandbox
    env: dict[str, str]
    output: str  # workspace-relative path of the CLI's stdout (JSON lines)
    stderr: str


def turn_dir(turn_id: str, attempt: int) -> str:
    return f"{TURNS_DIR}/{turn_id}-{attempt}"


def plan_turn(h: HarnessDefinition, *, turn_id: str, attempt: int, prompt: str, model: str, token: str,
              session_id: str | None, resume: bool, bin_path: str = f"{CLI_MOUNT}/node_modules/.bin",
              workspace: str = WORKSPACE, relay_url: str | None = None) -> TurnPlan:
    """The sandbox-side argv and environment of one turn. The argv is a shell that starts the
    relay forwarder, waits until it listens, then execs the CLI with its output in the turn's
    directory: the CLI's process is the sandbox's main process, so its exit ends the sandbox.

    With `relay_url` (a Kubernetes pod, which reaches the relay over TCP) there is no forwarder;
    `workspace` is the workspace's absolute path as the command sees it (on kwok, whose exec runs
    on the host, the volume's directory there); an empty `bin_path` finds the CLI on PATH."""
    if not _TURN_ID.match(turn_id) or attempt < 0:
        raise InvalidInput(f"turn id {turn_id!r} is not one lap-tui made", "ids are hex digits")
    state = f"{workspace}/{h.state_dirs[0]}" if h.state_dirs else f"{workspace}/.lap/harness/{h.name}"
    values = {"bin": f"{bin_path}/{h.bin}" if bin_path else h.bin, "prompt": prompt, "workdir": workspace,
              "model": model, "token": token, "relay_url": relay_url or RELAY_URL, "state": state,
              "session_id": session_id or ""}
    template = h.resume if resume else h.command
    if "${session_id}" in "".join(template) and not session_id:
        raise InvalidInput(f"harness {h.name} needs a session id for this command", "a lap-tui bug: report it")
    cli_argv = [_sub(a, values) for a in template]
    env = {k: _sub(v, values) for k, v in h.env.items()}
    for name, table in h.env_json.items():
        env[name] = json.dumps(_sub_tree(table, values), separators=(",", ":"))
    d = turn_dir(turn_id, attempt)
    out, err = f"{d}/out.jsonl", f"{d}/stderr.log"
    if relay_url is not None:
        env.setdefault("HOME", workspace)
        q = shlex.quote
        dirs = " ".join(q(f"{workspace}/{s}") for s in h.state_dirs)
        script = (f"mkdir -p {q(f'{workspace}/{d}')} {dirs} || exit 125; "
                  f"exec \"$@\" >{q(f'{workspace}/{out}')} 2>>{q(f'{workspace}/{err}')} </dev/null")
        return TurnPlan(argv=["/bin/sh", "-c", script, "lap-turn", *cli_argv], env=env, output=out, stderr=err)
    dirs = " ".join(f"'{WORKSPACE}/{s}'" for s in h.state_dirs)
    script = (
        f"mkdir -p '{WORKSPACE}/{d}' {dirs} || exit 125; "
        f"fifo=/tmp/lap-relay-ready; mkfifo $fifo || exit 125; "
        f"node {FORWARDER_MOUNT} {RELAY_PORT} {RELAY_MOUNT}/relay.sock >$fifo 2>>'{WORKSPACE}/{err}' & "
        f"read ready <$fifo; [ \"$ready\" = READY ] || {{ echo 'lap-tui: the relay forwarder did not start' "
        f">>'{WORKSPACE}/{err}'; exit 125; }}; "
        f"exec \"$@\" >'{WORKSPACE}/{out}' 2>>'{WORKSPACE}/{err}' </dev/null")
    return TurnPlan(argv=["/bin/sh", "-c", script, "lap-turn", *cli_argv], env=env, output=out, stderr=err)


def _sub(text: str, values: Mapping[str, str]) -> str:
    return string.Template(text).safe_substitute(values)


def _sub_tree(obj: Any, values: Mapping[str, str]) -> Any:
    if isinstance(obj, str):
        return _sub(obj, values)
    if isinstance(obj, dict):
        return {_sub(str(k), values): _sub_tree(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_sub_tree(v, values) for v in obj]
    return obj
