"""First-day defects of the CLI (issue 10 items 8, 10, 12, 15, 16), with the real binary in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import fails, ok
from tests.conftest import run_cli
from tests.support.scripted_gateway import ScriptedGateway, stream


def usage_error(*args: str, env: dict[str, str]) -> str:
    r = run_cli(*args, env=env)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    return r.stderr


# ---- item 10: --json everywhere, usage of the subcommand -------------------------------------------

def test_unknown_options_get_the_subcommands_usage(cli_env):
    err = usage_error("worker", "--bogus", env=cli_env)
    assert err.startswith("usage: lap-tui worker") and "unrecognized arguments: --bogus" in err
    err = usage_error("sandboxes", "logs", "abcd", "--bogus", env=cli_env)
    assert err.startswith("usage: lap-tui sandboxes logs") and "lap-tui sandboxes logs: error" in err
    err = usage_error("agents", "list", "--nope", env=cli_env)
    assert err.startswith("usage: lap-tui agents list")


def test_sandboxes_exec_and_logs_speak_json(require_bwrap, cli_env):
    ok("agents", "create", "coder", "--model", "m", env=cli_env)
    session = ok("sessions", "new", "coder", env=cli_env).strip()
    r = run_cli("sandboxes", "exec", session, "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 7",
                env=cli_env)
    assert r.returncode == 7 and r.stderr == "", r.stderr
    [line] = r.stdout.splitlines()
    result = json.loads(line)
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (7, "out\n", "err\n")
    assert result["sandbox"] == "s-" + session[:12] and result["timed_out"] is False and result["killed"] is None
    ok("sandboxes", "suspend", session, env=cli_env)
    lines = [json.loads(x) for x in ok("sandboxes", "logs", session, "--json", env=cli_env).splitlines()]
    assert lines and all(set(x) == {"sandbox", "line"} and x["sandbox"] == result["sandbox"] for x in lines)
    assert any("suspended" in x["line"] for x in lines)


def test_worker_json_prints_one_object_per_turn_driven(require_bwrap, cli_env):
    with ScriptedGateway(models=["gpt-test"]) as gw:
        env = dict(cli_env, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-test")
        gw.push(stream(["first reply"]), stream(["second reply"]))
        ok("agents", "create", "bot", "--model", "gpt-test", env=env)
        s1 = ok("sessions", "new", "bot", env=env).strip()
        s2 = ok("sessions", "new", "bot", env=env).strip()
        t1 = ok("send", s1, "hello", env=env).strip()
        t2 = ok("send", s2, "hello", env=env).strip()
        r = run_cli("worker", "--once", "--json", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted((e["turn_id"], e["session_id"], e["status"]) for e in events) == \
        sorted([(t1, s1, "completed"), (t2, s2, "completed")])
    assert all(e["event"] == "turn.driven" and e["error"] is None for e in events)
    assert "drove 2 sessions" in r.stderr


# ---- item 12: deletion and its sandbox, orphans, prefixes --------------------------------------------

def _sandboxes(env: dict[str, str]) -> dict[str, dict]:
    return {x["id"]: x for x in map(json.loads, ok("sandboxes", "list", "--json", env=env).splitlines())}


def test_deleting_a_session_deletes_its_sandbox_unless_kept(require_bwrap, cli_env):
    workspaces = Path(cli_env["XDG_DATA_HOME"]) / "lap-tui"
    ok("agents", "create", "coder", "--model", "m", env=cli_env)
    s1 = ok("sessions", "new", "coder", env=cli_env).strip()
    s2 = ok("sessions", "new", "coder", env=cli_env).strip()
    for s in (s1, s2):
        ok("sandboxes", "exec", s, "--", "sh", "-c", "echo kept > /workspace/file", env=cli_env)
    sb1, sb2 = "s-" + s1[:12], "s-" + s2[:12]
    assert set(_sandboxes(cli_env)) == {sb1, sb2}
    assert not any(x["orphan"] for x in _sandboxes(cli_env).values())
    assert len(list(workspaces.rglob("file"))) == 2

    out = ok("sessions", "delete", s1, env=cli_env)
    assert f"sandbox {sb1}" in out and "1 sandbox" in out
    assert set(_sandboxes(cli_env)) == {sb2}
    assert len(list(workspaces.rglob("file"))) == 1  # its files went with it

    out = json.loads(ok("sessions", "delete", s2, "--keep-sandbox", "--json", env=cli_env))
    assert out == {"deleted": s2, "sandboxes_kept": [sb2]}
    orphan = _sandboxes(cli_env)[sb2]
    assert orphan["orphan"] is True and orphan["warning"].startswith("ORPHAN")
    table = ok("sandboxes", "list", env=cli_env)
    assert "(orphan)" in table and "(gone)" in table
    # A prefix of the sandbox's id is enough.
    assert ok("sandboxes", "delete", sb2[:6], env=cli_env).strip() == f"deleted sandbox {sb2} and its workspace"
    assert _sandboxes(cli_env) == {}


def test_deleting_an_agent_deletes_its_sessions_sandboxes(require_bwrap, cli_env):
    ok("agents", "create", "coder", "--model", "m", env=cli_env)
    ok("agents", "create", "keeper", "--model", "m", env=cli_env)
    s1 = ok("sessions", "new", "coder", env=cli_env).strip()
    s2 = ok("sessions", "new", "keeper", env=cli_env).strip()
    for s in (s1, s2):
        ok("sandboxes", "exec", s, "--", "true", env=cli_env)
    msg = fails("agents", "delete", "coder", env=cli_env, code=4)
    assert "has 1 session;" in msg and "session(s)" not in msg and "sandboxes" in msg
    out = ok("agents", "delete", "coder", "--yes", env=cli_env)
    assert out.startswith("deleted agent coder (team default) and 1 session and 1 sandbox s-" + s1[:12])
    assert set(_sandboxes(cli_env)) == {"s-" + s2[:12]}
    out = json.loads(ok("agents", "delete", "keeper", "--yes", "--keep-sandbox", "--json", env=cli_env))
    assert out["sandboxes_kept"] == ["s-" + s2[:12]]
    assert _sandboxes(cli_env)["s-" + s2[:12]]["orphan"] is True


def test_an_ambiguous_or_too_short_sandbox_prefix_is_refused(require_bwrap, cli_env):
    ok("agents", "create", "coder", "--model", "m", "--scope", "context", env=cli_env)
    for context in ("repo-a", "repo-b"):
        s = ok("sessions", "new", "coder", "--context", context, env=cli_env).strip()
        ok("sandboxes", "exec", s, "--", "true", env=cli_env)
    names = sorted(_sandboxes(cli_env))
    assert [n[:14] for n in names] == ["default-repo-a", "default-repo-b"]
    assert "ambiguous (2 matches)" in fails("sandboxes", "delete", "default-repo", env=cli_env, code=2)
    assert "4 or more" in fails("sandboxes", "delete", "def", env=cli_env, code=3)
    assert sorted(_sandboxes(cli_env)) == names  # nothing deleted
    ok("sandboxes", "delete", "default-repo-a", env=cli_env)
    assert sorted(_sandboxes(cli_env)) == names[1:]


# ---- items 8, 15, 16: validation and messages ----------------------------------------------------------

@pytest.mark.parametrize("flag, value, why", [("--memory", "12", "'12' (12 bytes) is too little"),
                                              ("--memory", "1Mi", "too little"), ("--cpu", "0", "too little"),
                                              ("--cpu", "10m", "too little")])
def test_nonsense_limits_are_refused(cli_env, flag, value, why):
    msg = fails("agents", "create", "bot", "--model", "m", flag, value, env=cli_env, code=2)
    assert why in msg and "at least" in msg
    ok("agents", "create", "bot", "--model", "m", env=cli_env)
    assert why in fails("agents", "edit", "bot", flag, value, env=cli_env, code=2)


def test_edit_with_nothing_to_change_is_an_error(cli_env):
    ok("agents", "create", "bot", "--model", "m", env=cli_env)
    before = ok("agents", "show", "bot", "--json", env=cli_env)
    assert "nothing to change" in fails("agents", "edit", "bot", env=cli_env, code=2)
    assert ok("agents", "show", "bot", "--json", env=cli_env) == before


def test_a_long_name_is_not_echoed_in_full(cli_env):
    name = "a" * 300
    for args in (("agents", "create", name, "--model", "m"), ("agents", "show", name),
                 ("sessions", "show", "f" * 300)):
        msg = fails(*args, env=cli_env)
        assert name[:41] not in msg and len(msg) < 200, msg
    assert "300 characters long" in fails("agents", "create", name, "--model", "m", env=cli_env)


def test_config_says_where_it_looks_for_the_file(cli_env):
    where = Path(cli_env["XDG_CONFIG_HOME"]) / "lap-tui" / "config.toml"
    assert f"config file: none at {where}" in ok("config", env=cli_env)
    assert json.loads(ok("config", "--json", env=cli_env))["config_path"] == str(where)
    where.parent.mkdir(parents=True)
    where.write_text('team = "blue"\n')
    assert f"config file: {where}\n" in ok("config", env=cli_env)


def test_a_sqlite_url_with_a_missing_folder_is_refused_unless_asked(cli_env, tmp_path):
    db = tmp_path / "typo" / "x" / "lap.db"
    env = dict(cli_env, LAP_DATABASE_URL=f"sqlite://{db}")
    msg = fails("agents", "list", env=env, code=5)
    assert "does not exist" in msg and "LAP_CREATE_DB=1" in msg
    fails("migrate", env=env, code=5)
    assert not (tmp_path / "typo").exists()  # nothing created on the way
    ok("migrate", "--create", env=env)
    assert db.is_file()
    db2 = tmp_path / "other" / "lap.db"
    ok("agents", "list", env=dict(env, LAP_DATABASE_URL=f"sqlite://{db2}", LAP_CREATE_DB="1"))
    assert db2.is_file()
    # The default database's folder (the data dir) is always made.
    ok("agents", "list", env=cli_env)
    assert (Path(cli_env["XDG_DATA_HOME"]) / "lap-tui" / "lap.db").is_file()


@pytest.mark.parametrize("base", ["not-a-url", "ftp://host:4000", "http://", "http://host:notaport"])
def test_a_gateway_base_that_is_no_url_is_refused(cli_env, base):
    msg = fails("agents", "list", env=dict(cli_env, LITELLM_API_BASE=base), code=2)
    assert "LITELLM_API_BASE" in msg and "http://127.0.0.1:4000" in msg
