"""The real `lap-tui` command in a subprocess: round trips, JSON for scripts, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, need, run_cli
from tests.support.pgserver import free_port


def ok(*args: str, env: dict[str, str]) -> str:
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def fails(*args: str, env: dict[str, str], code: int | None = None) -> str:
    """Runs a command that must fail: one line on stderr, no traceback, nothing on stdout."""
    r = run_cli(*args, env=env)
    assert r.returncode != 0, r.stdout
    if code is not None:
        assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lap-tui: "), r.stderr
    assert r.stdout == ""
    return lines[0]


@pytest.fixture(params=["sqlite", "postgres"])
def env(request, cli_env, tmp_path):
    if request.param == "postgres":
        cli_env["LAP_DATABASE_URL"] = request.getfixturevalue("pg_url")
    return cli_env


def test_version(cli_env):
    from lap_tui import __version__

    assert ok("--version", env=cli_env).strip() == f"lap-tui {__version__}"


def test_agents_round_trip(env):
    created = json.loads(ok("agents", "create", "reviewer", "--model", "gpt-4o", "--prompt", "Review code.",
                            "--harness", "builtin", "--memory", "2Gi", "--network", "--env", "GITHUB_TOKEN",
                            "--json", env=env))
    assert (created["name"], created["team"], created["model"]) == ("reviewer", "default", "gpt-4o")
    assert created["sandbox"]["memory"] == "2Gi" and created["sandbox"]["network"] is True
    ok("agents", "create", "reviewer", "--model", "m", "--team", "blue", env=env)
    listed = [json.loads(line) for line in ok("agents", "list", "--json", env=env).splitlines()]
    assert [(a["team"], a["name"]) for a in listed] == [("blue", "reviewer"), ("default", "reviewer")]
    assert "reviewer" in ok("agents", "list", env=env)

    edited = json.loads(ok("agents", "edit", "reviewer", "--model", "gpt-5", "--no-network", "--rename", "critic",
                           "--json", env=env))
    assert (edited["name"], edited["model"], edited["sandbox"]["network"], edited["system_prompt"]) == \
        ("critic", "gpt-5", False, "Review code.")
    shown = json.loads(ok("agents", "show", "critic", "--json", env=env))
    assert shown["id"] == created["id"] and shown["sessions"] == 0
    assert "Review code." in ok("agents", "show", "critic", env=env)

    sid = ok("sessions", "new", "critic", "--title", "first", env=env).strip()
    assert len(sid) == 32
    msg = fails("agents", "delete", "critic", env=env)
    assert "1 session" in msg and "--yes" in msg
    out = json.loads(ok("agents", "delete", "critic", "--yes", "--json", env=env))
    assert out == {"deleted": "critic", "team": "default", "sessions_deleted": 1, "sandboxes_deleted": []}
    fails("sessions", "show", sid, env=env, code=3)


def test_sessions_and_journal_round_trip(env, tmp_path):
    ok("agents", "create", "bot", "--model", "m", env=env)
    s1 = json.loads(ok("sessions", "new", "bot", "--title", "one", "--context", "repo-a", "--json", env=env))
    sid = ok("sessions", "new", "bot", "--title", "two", env=env).strip()
    listed = [json.loads(x) for x in ok("sessions", "list", "--json", env=env).splitlines()]
    assert {s["id"] for s in listed} == {s1["id"], sid}
    assert all(s["agent"] == "bot" for s in listed)
    assert listed[0]["id"] == sid  # most recent first
    assert json.loads(ok("sessions", "show", sid[:8], "--json", env=env))["title"] == "two"
    assert s1["context_key"] == "repo-a"

    # Append through the store as another process would, then read the journal as JSON lines.
    script = ("import asyncio,sys\nfrom lap_tui.config import load_settings\nfrom lap_tui.store import open_store\n"
              "async def m():\n s=await open_store(load_settings().database_url)\n"
              " [await s.append(sys.argv[1], 'user.message', {'text': f'hello {i}'}, turn_id='t1') for i in range(3)]\n"
              " await s.close()\nasyncio.run(m())\n")
    subprocess.run([sys.executable, "-c", script, sid], env=env, check=True, cwd=tmp_path)
    lines = ok("journal", sid, "--json", env=env).splitlines()
    events = [json.loads(x) for x in lines]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert set(events[0]) == {"seq", "session_id", "turn_id", "kind", "at", "data"}
    assert events[2]["data"] == {"text": "hello 2"} and events[0]["session_id"] == sid
    assert [json.loads(x)["seq"] for x in ok("journal", sid, "--json", "--last", "1", env=env).splitlines()] == [3]
    assert "user.message" in ok("journal", sid, env=env)

    ok("sessions", "delete", sid, env=env)
    assert [json.loads(x)["id"] for x in ok("sessions", "list", "--json", env=env).splitlines()] == [s1["id"]]


def test_journal_follow_prints_new_events(cli_env, tmp_path):
    """Events appended by another process after the follower has printed what was there: only
    the follow itself can deliver them (a sleep before appending let a slow follower print them
    from its first read, so --follow was never tested)."""
    import queue
    import threading

    env = cli_env
    ok("agents", "create", "bot", "--model", "m", env=env)
    sid = ok("sessions", "new", "bot", env=env).strip()
    script = ("import asyncio,sys\nfrom lap_tui.config import load_settings\nfrom lap_tui.store import open_store\n"
              "async def m():\n s=await open_store(load_settings().database_url)\n"
              " [await s.append(sys.argv[1], 'model.delta', {'text': t}) for t in sys.argv[2:]]\n"
              " await s.close()\nasyncio.run(m())\n")
    subprocess.run([sys.executable, "-c", script, sid, "before"], env=env, check=True, cwd=tmp_path)
    follower = subprocess.Popen([sys.executable, "-m", "lap_tui", "journal", sid, "--json", "--follow"], env=env,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, follower.stdout), lines.put(None)], daemon=True).start()

    def next_event(what: str) -> dict:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"the follower printed no {what} in 60 s") from None
        assert line is not None, f"the follower ended (exit code {follower.wait()}) before its {what}"
        return json.loads(line)

    try:
        assert next_event("first event")["data"]["text"] == "before"  # its first read is done
        subprocess.run([sys.executable, "-c", script, sid, *map(str, range(5))], env=env, check=True, cwd=tmp_path)
        got = [next_event(f"followed event {i}") for i in range(5)]
        assert [e["data"]["text"] for e in got] == ["0", "1", "2", "3", "4"]
        assert follower.poll() is None  # still following
    finally:
        follower.kill()
        follower.wait()


def test_bad_names_and_unknowns(env):
    assert "may not contain" in fails("agents", "create", "Bad_Name", "--model", "m", env=env, code=2)
    assert "start and end" in fails("agents", "create", "x-", "--model", "m", env=env, code=2)
    ok("agents", "create", "bot", "--model", "m", env=env)
    assert "already exists" in fails("agents", "create", "bot", "--model", "m", env=env, code=4)
    assert "no agent 'ghost'" in fails("sessions", "new", "ghost", env=env, code=3)
    assert "no agent 'ghost'" in fails("agents", "show", "ghost", env=env, code=3)
    assert "no session" in fails("journal", "0123456789abcdef", env=env, code=3)
    assert "not an id" in fails("sessions", "show", "nope!", env=env, code=2)
    assert "context name" in fails("sessions", "new", "bot", "--context", "Not_Valid", env=env, code=2)
    # Nothing was written half-way by the failures.
    assert len(ok("agents", "list", "--json", env=env).splitlines()) == 1
    assert ok("sessions", "list", "--json", env=env) == ""


def test_broken_configuration_gets_one_line(cli_env, tmp_path):
    env = dict(cli_env, LAP_DATABASE_URL="mysql://db/lap")
    assert "not supported" in fails("agents", "list", env=env, code=2)
    env = dict(cli_env, LAP_DATABASE_URL=f"postgresql://lap@127.0.0.1:{free_port()}/lap")
    assert "cannot reach PostgreSQL" in fails("agents", "list", env=env)
    cfg = Path(cli_env["XDG_CONFIG_HOME"]) / "lap-tui" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("team = [unclosed\n")
    assert "not valid TOML" in fails("agents", "list", env=cli_env, code=2)


def test_corrupt_sqlite_file(cli_env, tmp_path):
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not a database" + os.urandom(8192))
    db.chmod(0o600)  # private as lap-tui keeps it, so the one line on stderr is the error
    env = dict(cli_env, LAP_DATABASE_URL=f"sqlite://{db}")
    before = db.read_bytes()
    assert "corrupt" in fails("agents", "list", env=env, code=5)
    assert db.read_bytes() == before  # left as it was for the user to rescue


def test_read_only_sqlite_file(cli_env, tmp_path):
    need(shutil.which("unshare") is not None or os.geteuid() != 0,
         "unshare (util-linux) is needed as root to make a read-only mount")
    ok("agents", "create", "bot", "--model", "m", env=cli_env)
    data = Path(cli_env["XDG_DATA_HOME"]) / "lap-tui"
    cmd = [sys.executable, "-m", "lap_tui", "agents", "create", "other", "--model", "m"]
    if os.geteuid() == 0:
        # Root ignores file modes: make the directory a read-only mount in a private namespace.
        cmd = ["unshare", "-m", "sh", "-c",
               f'mount --bind "{data}" "{data}" && mount -o remount,ro,bind "{data}" && exec "$@"', "sh", *cmd]
    else:
        for p in data.iterdir():
            p.chmod(0o444)
        data.chmod(0o555)
    r = subprocess.run(cmd, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    if os.geteuid() != 0:
        data.chmod(0o755)
    assert r.returncode == 5 and "read-only" in r.stderr and "Traceback" not in r.stderr
    assert [json.loads(x)["name"] for x in ok("agents", "list", "--json", env=cli_env).splitlines()] == ["bot"]


def test_migrate_and_config(cli_env):
    out = json.loads(ok("migrate", "--json", env=cli_env))
    assert out["before"] == 0 and out["applied"][0] == "0001_initial" and len(out["applied"]) == out["after"]
    again = json.loads(ok("migrate", "--json", env=cli_env))
    assert again["applied"] == [] and again["after"] == out["after"]
    env = dict(cli_env, LITELLM_API_KEY="sk-very-secret", CONTAINER_ENV_GH_TOKEN="ghp-secret-value")
    text = ok("config", env=env) + ok("config", "--json", env=env)
    assert "sk-very-secret" not in text and "ghp-secret-value" not in text
    conf = json.loads(ok("config", "--json", env=env))
    assert conf["container_env"]["GH_TOKEN"]["source"] == "environment CONTAINER_ENV_GH_TOKEN"
    assert conf["litellm_api_key"]["source"] == "environment LITELLM_API_KEY"
