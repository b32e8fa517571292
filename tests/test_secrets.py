"""Secrets (issue 15 item 7): the values of the variables an agent names are masked like
CONTAINER_ENV_* ones; a team's own secrets reach only its sandboxes; `lap-tui config` and
repr(Settings) never show a password or a key. Real bubblewrap sandboxes, a real store,
the scripted gateway over real HTTP and the real `lap-tui` binary."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lap_tui.config import load_settings, team_env_name
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import ConfigError
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import TurnStatus
from lap_tui.domain.secrets import MASK, Redactor, RedactStream
from lap_tui.domain.session import Session
from lap_tui.sandbox.env import sandbox_env
from tests.conftest import run_cli
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call

KEY = "sk-master-key-for-the-gateway"
SHARED = "operator-wide-value-1"
BLUE = "blue-team-secret-value"
RED = "red-team-secret-value"
NAMED = "agent-named-secret-value"


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"), "LITELLM_API_KEY": KEY,
            "CONTAINER_ENV_SHARED": SHARED, team_env_name("blue", "TEAM_TOKEN"): BLUE,
            "CONTAINER_ENV_TEAM_DATA_ENG__TEAM_TOKEN": RED, **extra}


def test_team_secrets_reach_only_their_team(tmp_path):
    s = load_settings(environ(tmp_path), cwd=tmp_path)
    assert team_env_name("data-eng", "X") == "CONTAINER_ENV_TEAM_DATA_ENG__X"
    blue, _ = sandbox_env(s, (), {}, team="blue")
    data_eng, _ = sandbox_env(s, (), {}, team="data-eng")
    other, _ = sandbox_env(s, (), {}, team="default")
    nobody, _ = sandbox_env(s, (), {})
    assert (blue["SHARED"], blue["TEAM_TOKEN"]) == (SHARED, BLUE)
    assert (data_eng["SHARED"], data_eng["TEAM_TOKEN"]) == (SHARED, RED)
    assert "TEAM_TOKEN" not in other and "TEAM_TOKEN" not in nobody and other["SHARED"] == SHARED
    assert not any(k.startswith("TEAM_") for k in other)  # the prefix never leaks as a global variable
    red = s.redactor
    assert red(f"{BLUE} {RED} {SHARED} {KEY}") == " ".join([MASK] * 4)  # every team's values are masked
    shown = json.dumps(s.describe())
    assert BLUE not in shown and RED not in shown and "TEAM_TOKEN" in shown


@pytest.mark.parametrize("key", ["CONTAINER_ENV_TEAM_BLUE_TOKEN", "CONTAINER_ENV_TEAM___X", "CONTAINER_ENV_TEAM_BLUE__",
                                 "CONTAINER_ENV_TEAM_-X__Y", "CONTAINER_ENV_TEAM_A__B__X", "CONTAINER_ENV_TEAM_A___X"])
def test_a_malformed_team_variable_is_refused_never_made_global(tmp_path, key):
    with pytest.raises(ConfigError, match="CONTAINER_ENV_TEAM_<TEAM>__<NAME>"):
        load_settings({**environ(tmp_path), key: "would-reach-every-team"}, cwd=tmp_path)


async def test_a_team_secret_never_reaches_another_teams_sandbox(tmp_path, require_bwrap, sqlite_store):
    from lap_tui.sandbox import backend_for, ensure_for_session

    settings = load_settings(environ(tmp_path), cwd=tmp_path)
    backend = backend_for(settings, sqlite_store, "local")
    outs = {}
    try:
        for team in ("blue", "data-eng", "default"):
            agent = await sqlite_store.create_agent(Agent(id=new_id(), name="bot", team=team, model="m"))
            session = await sqlite_store.create_session(Session(id=new_id(), agent_id=agent.id))
            status = await ensure_for_session(backend, sqlite_store, agent, session)
            result = await backend.exec(status.id, ["env"], timeout=60)
            assert result.exit_code == 0, result.stderr
            outs[team] = result.stdout.decode()
    finally:
        await backend.close()
    assert f"TEAM_TOKEN={BLUE}" in outs["blue"] and RED not in outs["blue"]
    assert f"TEAM_TOKEN={RED}" in outs["data-eng"] and BLUE not in outs["data-eng"]
    assert "TEAM_TOKEN" not in outs["default"] and BLUE not in outs["default"] and RED not in outs["default"]
    assert all(f"SHARED={SHARED}" in out for out in outs.values())
    assert all(KEY not in out for out in outs.values())


async def test_values_of_the_variables_an_agent_names_are_masked_in_the_journal(tmp_path, require_bwrap,
                                                                              sqlite_store, monkeypatch):
    """The agent names LAP_TEST_NAMED_TOKEN (handed to its sandbox from lap-tui's environment): the
    model repeats its value split across chunks and in a tool call, the tool prints it."""
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine

    monkeypatch.setenv("LAP_TEST_NAMED_TOKEN", NAMED)
    with ScriptedGateway(models=["m"]) as gw:
        settings = load_settings(environ(tmp_path, LITELLM_API_BASE=gw.base_url), cwd=tmp_path)
        agent = await sqlite_store.create_agent(Agent(id=new_id(), name="bot", team="default", model="m",
                                                      sandbox=SandboxSettings(env=("LAP_TEST_NAMED_TOKEN",))))
        session = await sqlite_store.create_session(Session(id=new_id(), agent_id=agent.id))
        half = len(NAMED) // 2
        args = json.dumps({"command": f'echo "$LAP_TEST_NAMED_TOKEN"; echo {NAMED}'})
        gw.push(stream(["token: ", NAMED[:half], NAMED[half:]], tool_calls=[tool_call("c1", "bash", args, 5)]),
                stream(["done ", NAMED]))
        eng = build_engine(settings, sqlite_store, options=EngineOptions(lease_ttl=5.0, checkpoint_interval=0.0))
        try:
            turn_id = await eng.send(session.id, "go")
            await eng.start(session.id)
        finally:
            await eng.close()
        second_request = json.dumps(gw.chat_requests[1].body)
    turn = await sqlite_store.get_turn(turn_id)
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await sqlite_store.read_events(session.id)
    dump = json.dumps([e.to_dict() for e in events])
    assert NAMED not in dump, [e.kind for e in events if NAMED in json.dumps(e.data)]
    output = next(e.data["output"] for e in events if e.kind == "tool.finished")
    assert output == f"{MASK}\n{MASK}\n"  # it reached the sandbox, and was masked on the way out
    assert NAMED not in second_request  # nor does the model get it back
    assert MASK in next(e.data["text"] for e in events if e.kind == "model.message")


def test_a_split_secret_is_masked_whole_by_the_stream():
    r = Redactor(["abcdef-secret"])
    for cut in range(1, 13):
        st = RedactStream(r)
        out = st.feed("x " + "abcdef-secret"[:cut]) + st.feed("abcdef-secret"[cut:] + " y") + st.flush()
        assert out == f"x {MASK} y", cut


def test_the_stream_masks_as_the_whole_text_for_any_chunking():
    """Secrets that repeat their first characters or start inside one another, any split: the
    streamed output is `redactor(whole)` (the tail held back is the longest start of a secret)."""
    import random

    r = Redactor(["aaab-key", "abab-secret", "sk-sk-key", "bab"])
    rnd = random.Random(7)
    alphabet = "ab-sk yek"
    for _ in range(400):
        parts = [rnd.choice(["aaab-key", "abab-secret", "sk-sk-key", "bab"]) if rnd.random() < 0.3 else
                 "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))) for _ in range(rnd.randint(1, 8))]
        whole = "".join(parts)
        st = RedactStream(r)
        out, i = [], 0
        while i < len(whole):
            n = rnd.randint(1, 5)
            out.append(st.feed(whole[i:i + n]))
            i += n
        out.append(st.flush())
        assert "".join(out) == r(whole), whole


def test_settings_repr_holds_no_secret(tmp_path):
    s = load_settings(environ(tmp_path, LAP_DATABASE_URL="postgresql://u:db-pass-1234@h/db?password=qp-pass-5678"),
                      cwd=tmp_path)
    text = repr(s) + repr(s.values) + str(s)
    for secret in (KEY, SHARED, BLUE, RED, "db-pass-1234", "qp-pass-5678"):
        assert secret not in text, secret
    assert "litellm_api_key" in text and "SHARED" in text  # names stay, for debugging


@pytest.mark.parametrize("url,password", [
    ("postgresql://lap:pw-in-userinfo@db.example:5432/lap", "pw-in-userinfo"),
    ("postgresql://db.example/lap?user=lap&password=pw-in-query", "pw-in-query"),
    ("postgresql://lap:pw-ipv6@[::1]:5432/lap", "pw-ipv6"),
    ("postgresql://lap:pw-socket@/lap?host=/run/postgresql", "pw-socket"),
    ("postgresql://lap:pw%40encoded@db/lap", "pw@encoded"),
])
def test_config_never_shows_the_database_password(cli_env, url, password):
    env = dict(cli_env, LAP_DATABASE_URL=url)
    for args in (("config",), ("config", "--json")):
        r = run_cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert password not in r.stdout and password.replace("@", "%40") not in r.stdout, r.stdout
        assert MASK in r.stdout
    shown = json.loads(run_cli("config", "--json", env=env).stdout)["database_url"]["value"]
    assert shown.split("@")[-1].split("?")[0] in url  # host, port and database as written ([::1] too)
    assert load_settings(env).redactor(f"x {password} y") == f"x {MASK} y"


def test_replace_keeps_settings_safe(tmp_path):
    s = load_settings(environ(tmp_path), cwd=tmp_path)
    assert KEY not in repr(replace(s, keys={"a": "b"}))
