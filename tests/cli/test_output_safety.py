"""Every human-readable output of the real `lap-tui` with untrusted text in it: a scripted
reply, a model name, a prompt, a session title, a gateway error and a sandbox log full of
OSC/CSI/DCS/APC sequences, C1 controls and bidi overrides. Nothing a terminal would act on
may come out; JSON stays exact but escapes C1, bidi and invisible characters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support.scripted_gateway import ScriptedGateway, error, stream

ESC = "\x1b"
EVIL = (f"{ESC}]0;pwned-title\x07{ESC}]52;c;ZWNobyBwd25lZA=={ESC}\\{ESC}[2J{ESC}Pq#0;2{ESC}\\"
        f"{ESC}_Gf=100{ESC}\\\x9b31m\x85\u202eexe.txt\u2066\u200bhidden\U000e0041")
# What must never reach a terminal: ESC, C1 (incl. the 8-bit CSI), BEL, bidi, zero-width, tags.
FORBIDDEN = ["\x1b", "\x07", "\x9b", "\x85", "\x90", "\u202e", "\u2066", "\u200b", "\U000e0041"]


def clean(out: str, what: str) -> None:
    bad = [repr(c) for c in FORBIDDEN if c in out]
    assert not bad, f"{what} printed {bad}: {out!r}"


def ok(*args: str, env: dict[str, str]) -> str:
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    clean(r.stderr, f"{args} stderr")
    return r.stdout


@pytest.fixture
def evil_session(cli_env):
    ok("agents", "create", "evil", "--model", f"gpt-{EVIL}", "--prompt", f"be {EVIL}\nline two", env=cli_env)
    sid = ok("sessions", "new", "evil", "--title", f"title {EVIL}\nID FAKE-ROW", env=cli_env).strip()
    return cli_env, sid


def test_send_wait_prints_a_reply_neutralised(evil_session):
    env, sid = evil_session
    # Sequences split across chunks too: the reply is assembled before it is printed.
    chunks = ["safe start ", EVIL[:3], EVIL[3:20], EVIL[20:], " safe end"]
    with ScriptedGateway(models=["m"]) as gw:
        gw.push(stream(chunks))
        env = dict(env, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-test-key")
        out = ok("send", sid, "hello", "--wait", env=env)
    clean(out, "send --wait")
    assert out.startswith("safe start ") and out.rstrip().endswith("safe end")
    assert "exe.txt" in out and "hidden" in out  # text is kept, only what acts or hides goes


def test_send_prints_the_gateway_error_detail_neutralised(evil_session):
    env, sid = evil_session
    with ScriptedGateway(models=["m"]) as gw:
        gw.push(error(400, f"bad request {EVIL}"))
        env = dict(env, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-test-key")
        r = run_cli("send", sid, "hello", "--wait", env=env)
    assert r.returncode == 1
    clean(r.stderr, "send's error")
    assert "the turn failed" in r.stderr and "bad request" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_journal_sessions_and_agents_outputs_are_neutralised(evil_session):
    env, sid = evil_session
    with ScriptedGateway(models=["m"]) as gw:
        gw.push(stream([EVIL]))
        env = dict(env, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-test-key")
        ok("send", sid, f"user says {EVIL}", "--wait", env=env)
    for args in (("journal", sid), ("sessions", "list"), ("sessions", "show", sid), ("agents", "list"),
                 ("agents", "show", "evil")):
        out = ok(*args, env=env)
        clean(out, " ".join(args))
    listing = ok("sessions", "list", env=env).splitlines()
    assert len(listing) == 2, listing  # the title's newline did not forge a row
    assert "FAKE-ROW" in listing[1]
    shown = ok("agents", "show", "evil", env=env)
    assert "model:" in shown and "line two" in shown


def test_json_outputs_stay_exact_but_escape_what_a_terminal_acts_on(evil_session):
    env, sid = evil_session
    with ScriptedGateway(models=["m"]) as gw:
        gw.push(stream([EVIL]))
        env = dict(env, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-test-key")
        reply = json.loads(ok("send", sid, "hi", "--wait", "--json", env=env))
    assert reply["reply"] == EVIL  # exact for scripts
    for args in (("journal", sid, "--json"), ("sessions", "list", "--json"), ("sessions", "show", sid, "--json"),
                 ("agents", "list", "--json"), ("agents", "show", "evil", "--json"), ("send", sid, "x", "--json")):
        out = ok(*args, env=env)
        clean(out, " ".join(args))
        for line in out.splitlines():
            json.loads(line)
    events = [json.loads(line) for line in ok("journal", sid, "--json", env=env).splitlines()]
    assert any(e["data"].get("text") == EVIL for e in events)
    assert json.loads(ok("agents", "show", "evil", "--json", env=env))["model"] == f"gpt-{EVIL}"


def test_sandbox_logs_are_neutralised_unless_raw(evil_session, require_bwrap):
    env, sid = evil_session
    r = run_cli("sandboxes", "exec", sid, "--", "printf", "%s", EVIL, env=env)
    assert r.returncode == 0, r.stderr
    assert EVIL in r.stdout  # exec stays raw: the user's own command, like kubectl exec
    # The local backend quotes argv in its log; a backend that passes lines through (a pod's
    # log) does not: the CLI must neutralise whatever a backend returns.
    (log,) = Path(env["XDG_DATA_HOME"]).glob("lap-tui/sandboxes/*/events.log")
    with log.open("a") as fh:
        fh.write(f"2026-01-01T00:00:00Z output {EVIL}\n")
    out = ok("sandboxes", "logs", sid, env=env)
    clean(out, "sandboxes logs")
    assert "printf" in out and "exe.txt" in out
    raw = ok("sandboxes", "logs", sid, "--raw", env=env)
    assert EVIL.replace("\x85", "\n") in raw  # (the backend splits lines at NEL)


def test_worker_and_relay_logs_are_neutralised_and_masked(tmp_path):
    """`lap-tui worker` and `harnesses relay` log to stderr (often a tmux pane): a log line
    quoting a gateway error or an exception goes through the same neutraliser, then the mask."""
    import logging

    from lap_tui.cli.common import SafeLogFormatter, sanitiser
    from lap_tui.config import load_settings

    settings = load_settings({"XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
                              "LITELLM_API_KEY": "sk-log-secret-key"}, cwd=tmp_path)
    fmt = SafeLogFormatter(sanitiser(settings))
    record = logging.LogRecord("lap_tui.engine", logging.WARNING, __file__, 1, "stream broke: %s", (
        f"gateway said {EVIL} with sk-log-\x1b[msecret-key",), None)
    out = fmt.format(record)
    clean(out, "a log line")
    assert "stream broke: gateway said" in out and "sk-log-secret-key" not in out and "********" in out


def test_config_shows_settings_from_the_environment_neutralised(cli_env):
    r = run_cli("config", env=dict(cli_env, LAP_THEME=f"dark{EVIL}", LAP_KUBE_CONTEXT=f"ctx{EVIL}"))
    assert r.returncode == 0, r.stderr
    clean(r.stdout + r.stderr, "config")
    assert "exe.txt" in r.stdout
    out = run_cli("config", "--json", env=dict(cli_env, LAP_THEME=f"dark{EVIL}")).stdout
    clean(out, "config --json")
    assert json.loads(out)["theme"]["value"] == f"dark{EVIL}"
