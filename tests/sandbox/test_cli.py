"""`lap-tui sandboxes ...` as a user runs it: exit codes passed through, secrets masked, clear errors."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.sandbox.conftest import SECRET


def lap(*args: str, env: dict[str, str], input: str | None = None):
    return run_cli(*args, env=env, input=input)


def one_line_error(r, code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lap-tui: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_sandboxes_cli_round_trip(require_bwrap, cli_env):
    env = dict(cli_env, CONTAINER_ENV_API_TOKEN=SECRET)
    assert lap("agents", "create", "coder", "--model", "m", env=env).returncode == 0
    session = lap("sessions", "new", "coder", env=env).stdout.strip()

    r = lap("sandboxes", "exec", session, "--", "sh", "-c", "echo out; echo err >&2; exit 7", env=env)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    r = lap("sandboxes", "exec", session, "--", "sh", "-c", "echo $API_TOKEN", env=env)
    assert r.stdout == "********\n"  # the value reached the sandbox, and is masked on screen
    r = lap("sandboxes", "exec", session, "--stdin", "--", "wc", "-c", env=env, input="12345")
    assert r.stdout.strip() == "5"

    rows = [json.loads(line) for line in lap("sandboxes", "list", "--json", env=env).stdout.splitlines()]
    assert [(x["session_id"], x["phase"], x["warning"]) for x in rows] == [(session, "Running", None)]
    assert SECRET not in lap("sandboxes", "list", env=env).stdout

    assert lap("sandboxes", "suspend", session, env=env).stdout.strip().endswith("Suspended")
    assert "suspended" in lap("sandboxes", "logs", session, env=env).stdout
    assert lap("sandboxes", "resume", session, env=env).stdout.strip().endswith("Running")
    r = lap("sandboxes", "exec", session, "--timeout", "1", "--", "sleep", "100", env=env)
    assert r.returncode == 137 and "killed after 1 s" in r.stderr
    r = lap("sandboxes", "shell", session, env=env, input="echo from-shell $((6*7))\nexit 3\n")
    assert r.returncode == 3 and "from-shell 42" in r.stdout

    assert "deleted" in lap("sandboxes", "delete", session, env=env).stdout
    assert lap("sandboxes", "list", "--json", env=env).stdout == ""


def test_sandboxes_cli_errors(require_bwrap, cli_env):
    env = cli_env
    assert "no session or sandbox 'ffff0000'" in one_line_error(
        lap("sandboxes", "exec", "ffff0000", "--", "true", env=env), 3)
    lap("agents", "create", "coder", "--model", "m", env=env)
    session = lap("sessions", "new", "coder", env=env).stdout.strip()
    assert "has no sandbox yet" in one_line_error(lap("sandboxes", "logs", session, env=env), 3)
    assert "'no-such-cmd' cannot be started" in one_line_error(
        lap("sandboxes", "exec", session, "--", "no-such-cmd", env=env), 127)
    assert "no command" in one_line_error(lap("sandboxes", "exec", session, "--", env=env), 2)
