"""LiteLLM virtual keys instead of the gateway's key: an agent with `--gateway-key virtual` gets a
key minted per session by the relay (budget and expiry enforced by the gateway), the sandbox
still holds only its relay token, the budget refusal fails the turn clearly, and deleting the
session deletes the key. Real opencode in a real bubblewrap sandbox, through the real relay
process, against the scripted gateway's /key/* API (master key required, unknown keys refused)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lap_tui.gateway.relay import virtual_key
from tests.harness.conftest import MASTER_KEY, cli, need_cli
from tests.harness.test_opencode import bash, events_of, send, workspace
from tests.support.scripted_gateway import ScriptedGateway, stream


@pytest.fixture(autouse=True)
def _opencode():
    need_cli("opencode")


@pytest.fixture
def gw():
    """A gateway that, like LiteLLM with a database, knows only its master key and minted keys."""
    with ScriptedGateway(models=["gpt-test"], api_key=MASTER_KEY) as g:
        yield g


def _all_bytes_under(*roots: Path) -> list[tuple[Path, bytes]]:
    out = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    out.append((path, path.read_bytes()))
                except OSError:
                    pass
    return out


async def test_a_session_uses_its_own_virtual_key_within_its_budget_and_loses_it_when_deleted(hx_env, gw):
    env = hx_env
    cli(env, "agents", "create", "vk", "--model", "gpt-test", "--harness", "opencode",
        "--gateway-key", "virtual", "--key-budget", "0.005", "--key-ttl", "1d")
    shown = cli(env, "agents", "show", "vk")
    assert "a LiteLLM virtual key per session, budget $0.005, expires after 1d" in shown
    sid = cli(env, "sessions", "new", "vk").strip()

    # Turn 1: a tool call and a reply; the two answers cost 0.006 in all, over the 0.005 budget.
    gw.push(stream([], tool_calls=[bash("call_v", "printf 'env: %s\\n' \"$(env | sort | tr '\\n' ' ')\" > env.txt")],
                   usage={"prompt_tokens": 10, "completion_tokens": 5}, cost=0.003),
            stream(["done"], usage={"prompt_tokens": 12, "completion_tokens": 1}, cost=0.003))
    r = send(env, sid, "look around")
    assert r.returncode == 0, r.stdout + r.stderr

    key = virtual_key(MASTER_KEY, sid)
    (minted,) = gw.virtual_keys.items()
    assert minted[0] == key
    info = minted[1]
    assert info["max_budget"] == 0.005 and info["duration"] == "1d" and info["expires"] is not None
    assert info["key_alias"].startswith(f"lap-tui-{sid}-")
    assert info["metadata"] == {"lap_tui_session": sid, "lap_tui_agent": "vk", "lap_tui_team": "default"}
    assert info["spend"] == pytest.approx(0.006)
    generate = [q for q in gw.requests if q.path == "/v1/key/generate"]
    assert len(generate) == 1 and generate[0].headers["authorization"] == f"Bearer {MASTER_KEY}"
    model_calls = [q for q in gw.requests if q.path.startswith("/v1/chat") or q.path == "/v1/models"]
    assert len(model_calls) >= 2
    assert {q.headers["authorization"] for q in model_calls} == {f"Bearer {key}"}  # never the master key

    # The virtual key is a secret like the master key: nowhere in the sandbox, store, logs, journal.
    ws = workspace(env, sid)
    seen = (ws / "env.txt").read_text()
    assert "OPENCODE_CONFIG_CONTENT" in seen and "lap-" in seen  # the CLI's env, seen from inside
    data, state = Path(env["XDG_DATA_HOME"]), Path(env["XDG_STATE_HOME"])
    files = _all_bytes_under(data, state)
    assert any(p.name == "relay.log" for p, _ in files) and any(p.name == "lap.db" for p, _ in files)
    for path, raw in files:
        assert key.encode() not in raw and MASTER_KEY.encode() not in raw, path
    events, (turn1,), _s = await events_of(env, sid)
    assert key not in repr([e.data for e in events])
    assert turn1.status.value == "completed" and turn1.cost_usd == pytest.approx(0.006)

    # Turn 2: the gateway refuses the key over its budget; the turn fails saying so.
    gw.push(stream(["never sent"]))
    r = send(env, sid, "once more")
    events, turns, _s = await events_of(env, sid)
    assert turns[-1].status.value == "failed", [(e.kind, e.data) for e in events if e.turn_id == turns[-1].id]
    failed = [e.data for e in events if e.kind == "turn.failed" and e.turn_id == turns[-1].id]
    message = repr(failed) + r.stdout + r.stderr
    assert "budget exceeded" in message and "0.005" in message, message
    assert key not in message
    assert gw.remaining == 1  # the refused request never reached a model

    # Deleting the session deletes its key (with the master key); the gateway then refuses it.
    out = subprocess.run([sys.executable, "-m", "lap_tui", "sessions", "delete", sid], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert gw.virtual_keys == {}
    (delete,) = [q for q in gw.requests if q.path == "/v1/key/delete"]
    assert delete.headers["authorization"] == f"Bearer {MASTER_KEY}" and delete.body == {"keys": [key]}
    async with httpx.AsyncClient(base_url=gw.base_url) as c:
        gone = await c.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        assert gone.status_code == 401

    # Deleting the agent deletes its sessions' keys too (one never minted counts as gone).
    sid2 = cli(env, "sessions", "new", "vk").strip()
    out = subprocess.run([sys.executable, "-m", "lap_tui", "agents", "delete", "vk", "--yes"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "virtual key" not in out.stderr, out.stderr
    assert [q.body for q in gw.requests if q.path == "/v1/key/delete"][1:] == [{"keys": [virtual_key(MASTER_KEY, sid2)]}]


def test_the_gateway_key_flags_are_checked_and_shown(hx_env):
    env = hx_env
    bad = subprocess.run([sys.executable, "-m", "lap_tui", "agents", "create", "x", "--model", "m",
                          "--gateway-key", "virtual", "--key-ttl", "7 days"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "key TTL '7 days' is not a duration" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "lap_tui", "agents", "create", "x", "--model", "m",
                          "--gateway-key", "virtual", "--key-budget", "-1"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "key budget -1.0 is not an amount of US dollars" in bad.stderr
    cli(env, "agents", "create", "x", "--model", "m", "--harness", "opencode")
    assert "relay (the gateway's key, swapped in by the relay)" in cli(env, "agents", "show", "x")
    cli(env, "agents", "edit", "x", "--gateway-key", "virtual", "--key-budget", "2.5")
    sb = json.loads(cli(env, "agents", "show", "x", "--json"))["sandbox"]
    assert (sb["gateway_key"], sb["key_budget_usd"], sb["key_ttl"]) == ("virtual", 2.5, "")
    cli(env, "agents", "edit", "x", "--key-ttl", "12h")
    assert "a LiteLLM virtual key per session, budget $2.5, expires after 12h" in cli(env, "agents", "show", "x")
