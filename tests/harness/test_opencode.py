"""opencode, the real CLI (npm opencode-ai, pinned), in a bubblewrap sandbox through the relay."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lap_tui.store import open_store
from tests.harness.conftest import MASTER_KEY, cli, need_cli
from tests.support.scripted_gateway import stream, tool_call


@pytest.fixture(autouse=True)
def _opencode():
    need_cli("opencode")


def bash(id_: str, command: str):
    return tool_call(id_, "bash", json.dumps({"command": command, "description": "run it"}))


def new_session(env) -> str:
    cli(env, "agents", "create", "oc", "--model", "gpt-test", "--harness", "opencode")
    return cli(env, "sessions", "new", "oc").strip()


def db_url(env) -> str:
    return f"sqlite://{Path(env['XDG_DATA_HOME']) / 'lap-tui' / 'lap.db'}"


def workspace(env, session_id: str) -> Path:
    (d,) = (Path(env["XDG_DATA_HOME"]) / "lap-tui" / "sandboxes").glob(f"s-{session_id[:12]}*")
    return d / "workspace"


async def events_of(env, session_id: str):
    store = await open_store(db_url(env))
    try:
        return await store.read_events(session_id), await store.list_turns(session_id), \
            await store.get_session(session_id)
    finally:
        await store.close()


def send(env, session_id: str, text: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lap_tui", "send", session_id, text, "--wait"], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=env["XDG_STATE_HOME"].rsplit("/", 1)[0])


async def test_a_tool_using_turn_then_a_resumed_one(hx_env, gw):
    env = hx_env
    sid = new_session(env)
    gw.push(stream([], tool_calls=[bash("call_w", "printf 'hi from opencode\\n' > hello.txt")],
                   usage={"prompt_tokens": 11, "completion_tokens": 7}, cost=0.001),
            stream(["Wrote ", "hello.txt."], usage={"prompt_tokens": 23, "completion_tokens": 3}, cost=0.002))
    r = send(env, sid, "write hello.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    ws = workspace(env, sid)
    assert (ws / "hello.txt").read_text() == "hi from opencode\n"  # the CLI's tool ran in the sandbox

    events, turns, session = await events_of(env, sid)
    kinds = [e.kind for e in events]
    assert kinds[-1] == "turn.completed", kinds
    started = [e.data for e in events if e.kind == "tool.started"]
    finished = [e.data for e in events if e.kind == "tool.finished"]
    assert [(d["tool_call_id"], d["name"]) for d in started] == [("call_w", "bash")]
    assert "hello.txt" in started[0]["arguments"]
    assert [d["tool_call_id"] for d in finished] == ["call_w"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["Wrote hello.txt."]
    cli_sid = session.harness_session_id
    assert cli_sid and cli_sid.startswith("ses_")
    # Tokens and cost reach the turn, counted by the relay from the gateway's answers.
    (t1,) = turns
    assert (t1.status.value, t1.prompt_tokens, t1.completion_tokens) == ("completed", 34, 10)
    assert abs(t1.cost_usd - 0.003) < 1e-9
    done = [e for e in events if e.kind == "turn.completed"][0].data
    assert (done["prompt_tokens"], done["completion_tokens"]) == (34, 10)
    # The gateway saw the master key; the CLI only ever had its session token.
    assert all(r.headers.get("authorization") == f"Bearer {MASTER_KEY}" for r in gw.chat_requests)

    # Turn 2 from a new process resumes the same opencode session: turn 1 is in its history.
    gw.push(stream(["I remember."], usage={"prompt_tokens": 40, "completion_tokens": 2}))
    r = send(env, sid, "--help: what did you write?")  # never taken for an option
    assert r.returncode == 0, r.stdout + r.stderr
    history = json.dumps(gw.chat_requests[-1].body["messages"])
    assert "--help: what did you write?" in history and "write hello.txt" in history and "hi from opencode" in history and "Wrote hello.txt." in history
    events, turns, session = await events_of(env, sid)
    assert session.harness_session_id == cli_sid
    resumed = [e.data for e in events if e.kind == "harness.event" and e.data.get("type") == "cli.started"]
    assert [d["resume"] for d in resumed] == [False, True]
    assert turns[-1].status.value == "completed" and turns[-1].prompt_tokens == 40


async def wait_for(env, session_id: str, check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events, _turns, _s = await events_of(env, session_id)
        if check(events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def lap(env, *args) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lap_tui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=env["XDG_STATE_HOME"].rsplit("/", 1)[0])


def is_cli(e, kind: str) -> bool:
    return e.kind == "harness.event" and e.data.get("type") == kind


async def test_the_master_key_never_enters_the_sandbox_and_tokens_are_revoked(hx_env, gw):
    import httpx

    from lap_tui.engine.relay_service import issue_token

    env = hx_env
    sid = new_session(env)
    # Everything the sandbox's processes hold, seen from inside: environments and command lines.
    dump = "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' > seen.txt; ls -la /lap/relay >> seen.txt"
    gw.push(stream([], tool_calls=[bash("call_d", dump)]), stream(["dumped"]))
    r = send(env, sid, "dump")
    assert r.returncode == 0, r.stdout + r.stderr
    ws = workspace(env, sid)
    events, _t, _s = await events_of(env, sid)
    assert (ws / "seen.txt").exists(), [e.data for e in events if e.kind.startswith("tool.")]
    seen = (ws / "seen.txt").read_text()
    assert "OPENCODE_CONFIG_CONTENT" in seen and '"apiKey":"lap-' in seen  # the check sees the CLI's env
    assert MASTER_KEY not in seen
    assert "relay.sock" in seen and "relay.log" not in seen  # only the socket is bound in
    for path in ws.rglob("*"):  # its files, the CLI's own state included
        if path.is_file() and not path.is_symlink():
            assert MASTER_KEY.encode() not in path.read_bytes(), path

    sock = Path(env["XDG_DATA_HOME"]) / "lap-tui" / "relay" / "sock" / "relay.sock"
    used = re.search(r'"apiKey":"(lap-[A-Za-z0-9_-]+)"', seen).group(1)  # the CLI's token, seen inside
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock)), base_url="http://relay") as c:
        # The turn is over: its token no longer opens the gateway (a leftover process cannot use it).
        assert (await c.get("/v1/models", headers={"authorization": f"Bearer {used}"})).status_code == 401
        store = await open_store(db_url(env))
        try:
            token = await issue_token(store, sid)
        finally:
            await store.close()
        ok = await c.get("/v1/models", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "gpt-test" in ok.text
        assert (await c.get("/v1/models", headers={"authorization": "Bearer lap-guessed"})).status_code == 401
        assert (await c.get("/v1/models")).status_code == 401
        cli(env, "sessions", "delete", sid)
        revoked = await c.get("/v1/models", headers={"x-api-key": token})
        assert revoked.status_code == 401 and "revoked" in revoked.text


def sandbox_pids(ws: Path) -> list[int]:
    """Host processes of the sandbox: everything whose command line names its workspace."""
    marker = os.fsencode(str(ws))
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if marker in fh.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


async def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def in_process(hx_env, monkeypatch):
    """This process plays lap-tui: its environment is the test's (the relay it starts inherits it)."""
    for k in [k for k in os.environ if k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))]:
        monkeypatch.delenv(k)
    for k, v in hx_env.items():
        monkeypatch.setenv(k, v)
    return hx_env


async def test_cancel_and_the_turn_timeout_kill_the_cli_process_tree(in_process, gw):
    from lap_tui.config import load_settings
    from lap_tui.engine.services import build_engine

    env = in_process
    sid = new_session(env)
    gw.push(stream([], tool_calls=[bash("call_s", "echo started > started.txt; sleep 600; echo never > after.txt")]))
    settings = load_settings()
    store = await open_store(settings.database_url)
    engine = build_engine(settings, store)
    try:
        turn_id = await engine.send(sid, "sleep a long time")
        await wait_until(lambda: any((p / "workspace" / "started.txt").exists() for p in
                                     (Path(env["XDG_DATA_HOME"]) / "lap-tui" / "sandboxes").glob("s-*")),
                         "the CLI's tool started in the sandbox")
        ws = workspace(env, sid)
        assert sandbox_pids(ws)
        await engine.cancel(turn_id)
        await wait_until(lambda: not sandbox_pids(ws), "every process of the sandbox gone after the cancel")
        await engine.start(sid)  # the driver ends once the cancelled turn is journaled
        assert (await store.get_turn(turn_id)).status.value == "cancelled"
        assert any(e.kind == "turn.cancelled" for e in await store.read_events(sid))
        assert not (ws / "after.txt").exists()

        # lap-tui's own per-turn timeout: a user's harness definition with a short one.
        user = Path(env["XDG_CONFIG_HOME"]) / "lap-tui" / "harnesses" / "opencode"
        user.mkdir(parents=True)
        text = (Path(__file__).parents[2] / "harnesses" / "opencode" / "harness.toml").read_text()
        (user / "harness.toml").write_text(text.replace("timeout = 1800", "timeout = 5"))
        gw.push(stream([], tool_calls=[bash("call_t", "sleep 600; echo x > after.txt")]))
        turn_id = await engine.send(sid, "and again")
        await engine.start(sid)
        turn = await store.get_turn(turn_id)
        assert turn.status.value == "failed" and "timeout" in (turn.error or ""), turn
        assert not sandbox_pids(ws) and not (ws / "after.txt").exists()
    finally:
        await engine.close()
        await store.close()


async def test_the_clis_state_deleted_then_a_new_session_seeded_from_the_journal(hx_env, gw):
    import shutil

    env = hx_env
    sid = new_session(env)
    gw.push(stream(["The secret word is PAPAYA."]))
    assert send(env, sid, "remember a word").returncode == 0
    first = (await events_of(env, sid))[2].harness_session_id
    shutil.rmtree(workspace(env, sid) / ".lap" / "harness" / "opencode")  # its SQLite store and all
    gw.push(stream(["It was PAPAYA."]))
    r = send(env, sid, "which word?")
    assert r.returncode == 0, r.stdout + r.stderr
    history = json.dumps(gw.chat_requests[-1].body["messages"])
    assert "remember a word" in history and "The secret word is PAPAYA." in history and "which word?" in history
    events, turns, session = await events_of(env, sid)
    lost = [e.data for e in events if is_cli(e, "cli.state_lost")]
    assert len(lost) == 1 and lost[0]["previous_session_id"] == first
    assert session.harness_session_id and session.harness_session_id != first
    assert turns[-1].status.value == "completed"


async def test_closing_lap_tui_mid_turn_leaves_the_cli_running_for_the_next_driver(in_process, gw, tmp_path):
    from lap_tui.config import load_settings
    from lap_tui.engine.services import build_engine

    env = in_process
    sid = new_session(env)
    release = tmp_path / "release"
    gw.push(stream([], tool_calls=[bash("call_1", "echo one >> effects.log")]),
            stream(["finished after the close"], wait_file=str(release)))
    settings = load_settings()
    store = await open_store(settings.database_url)
    engine = build_engine(settings, store)
    try:
        turn_id = await engine.send(sid, "run it")
        await wait_for(env, sid, lambda evs: any(e.kind == "tool.finished" for e in evs), "the tool finished")
    finally:
        # The CLI cannot finish before `release` exists: close() returning proves it did not wait.
        await asyncio.wait_for(engine.close(), 60)
    assert (await store.get_turn(turn_id)).status.value == "running"
    assert sandbox_pids(workspace(env, sid))  # the CLI goes on
    await store.close()
    release.touch()
    out = subprocess.run([sys.executable, "-m", "lap_tui", "worker", "--once", "--poll", "0.05"], env=env,
                         capture_output=True, text=True, timeout=180, cwd=env["XDG_STATE_HOME"].rsplit("/", 1)[0])
    assert out.returncode == 0, out.stderr
    events, (turn,), _s = await events_of(env, sid)
    assert turn.status.value == "completed"
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["finished after the close"]
    assert sum(e.kind == "tool.started" for e in events) == 1 and sum(is_cli(e, "cli.started") for e in events) == 1


async def test_a_users_own_harness_definition_runs_with_no_code_change(hx_env, gw):
    env = hx_env
    mine = Path(env["XDG_CONFIG_HOME"]) / "lap-tui" / "harnesses" / "oc-custom"
    mine.mkdir(parents=True)
    text = (Path(__file__).parents[2] / "harnesses" / "opencode" / "harness.toml").read_text()
    (mine / "harness.toml").write_text(text.replace('name = "opencode"', 'name = "oc-custom"')
                                       .replace('"--title", "lap-tui"', '"--title", "custom"'))
    listed = [json.loads(line) for line in cli(env, "harnesses", "list", "--json").splitlines()]
    assert {"name": "oc-custom", "installed": True} in [{k: d[k] for k in ("name", "installed")} for d in listed]
    r = subprocess.run([sys.executable, "-m", "lap_tui", "agents", "create", "x", "--model", "m", "--harness", "nope"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no harness 'nope'" in r.stderr
    cli(env, "agents", "create", "mine", "--model", "gpt-test", "--harness", "oc-custom")
    sid = cli(env, "sessions", "new", "mine").strip()
    gw.push(stream(["custom harness here"]))
    r = send(env, sid, "hi")
    assert r.returncode == 0, r.stdout + r.stderr
    events, (turn,), _s = await events_of(env, sid)
    assert [e.data["harness"] for e in events if is_cli(e, "cli.started")] == ["oc-custom"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["custom harness here"]


async def test_a_driver_that_died_after_the_cli_ended_is_finished_by_the_next_without_a_new_cli(in_process, gw):
    from lap_tui.config import load_settings
    from lap_tui.domain.journal import Turn, TurnStatus
    from lap_tui.engine.services import build_engine

    env = in_process
    sid = new_session(env)
    settings = load_settings()
    store = await open_store(settings.database_url)
    engine = build_engine(settings, store)
    try:
        turn = await store.create_turn(Turn(id="d" * 32, session_id=sid))
        for kind, data in (("turn.queued", {}), ("user.message", {"text": "hi"}), ("turn.started", {}),
                           ("harness.event", {"type": "cli.started", "attempt": 0, "output": ".lap/turns/x/out.jsonl",
                                              "stderr": ".lap/turns/x/stderr.log", "resume": False}),
                           ("model.message", {"text": "done before", "tool_calls": [], "cli": {"attempt": 0, "at": 0, "n": 0}}),
                           ("harness.event", {"type": "cli.exited", "attempt": 0, "exit_code": 0})):
            await store.append(sid, kind, data, turn_id=turn.id)
        await store.update_turn(turn.id, status=TurnStatus.RUNNING)
        await engine.drive_session(sid)
        events = await store.read_events(sid)
        assert (await store.get_turn(turn.id)).status.value == "completed"
        assert sum(is_cli(e, "cli.started") for e in events) == 1 and gw.requests == []  # no second CLI
        assert [e.kind for e in events][-1] == "turn.completed"
    finally:
        await engine.close()
        await store.close()


async def test_a_local_cli_agent_runs_while_a_cluster_is_configured(hx_env, gw, tmp_path):
    """With a cluster configured the engine's sandboxes are a router over both backends; a CLI
    harness agent on the local backend used to fail ('the kubernetes backend cannot run CLI
    harness turns yet') because the router, not the local backend, was handed to Detached.
    The cluster is never contacted: nothing here runs on it."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    env = {**hx_env, "LAP_KUBECONFIG": str(kubeconfig), "LAP_KUBE_CONTEXT": "nowhere"}
    cli(env, "agents", "create", "oc", "--model", "gpt-test", "--harness", "opencode", "--sandbox-backend", "local")
    sid = cli(env, "sessions", "new", "oc").strip()
    gw.push(stream(["local while clustered"]))
    r = send(env, sid, "hi")
    assert r.returncode == 0, r.stdout + r.stderr
    events, (turn,), _s = await events_of(env, sid)
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["local while clustered"]
