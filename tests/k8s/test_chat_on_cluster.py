"""A Kubernetes-backed agent's tool turn end to end from the app's chat and from `lap-tui send`
(issue 11, "Done when"): the tool runs in the session's Sandbox in the team namespace, the
reply reaches the screen / stdout. Real API server and agent-sandbox controller, scripted
gateway over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.sandbox import session_sandbox_id
from lap_tui.engine.engine import EngineOptions
from lap_tui.engine.services import build_engine
from lap_tui.sandbox import backend_for
from lap_tui.sandbox.k8s import objects
from lap_tui.store import open_store
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.chat import ChatScreen
from lap_tui.tui.screens.sessions import SessionsScreen
from tests.k8s.lap_backend import TEAM, k8s_env, kubectl_json
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call
from tests.tui.conftest import make_services, wait_for


@pytest.fixture
def gw():
    with ScriptedGateway(models=["gpt-test"]) as g:
        yield g


def _script(gw) -> None:
    gw.push(stream(["Checking."], tool_calls=[tool_call("c1", "bash", json.dumps(
                {"command": "echo from-the-pod > where.txt; cat where.txt"}))]),
            stream(["The pod says hello."]))


async def test_a_chat_turn_in_the_app_runs_its_tool_in_the_sandbox(tmp_path: Path, k8s_cluster, k8s_namespace, gw):
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace, LITELLM_API_BASE=gw.base_url,
                  LITELLM_API_KEY="sk-master-not-in-sandbox", LAP_TEAM=TEAM)
    services = make_services(tmp_path, environ=env, models=["gpt-test"])
    services.make_engine = lambda store: build_engine(services.settings, store, options=EngineOptions(lease_ttl=5.0))
    services.make_sandboxes = lambda store: backend_for(services.settings, store, environ=env, ready_timeout=120)
    store = await open_store(services.settings.database_url)
    await store.create_agent(Agent(id=new_id(), name="kube-bot", team=TEAM, model="gpt-test",
                                   sandbox=SandboxSettings(backend="kubernetes")))
    await store.close()
    _script(gw)
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.store is not None and app.engine is not None, what="store and engine")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="sessions")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="chat")
        chat = app.screen
        await pilot.press(*"where are you?", "ctrl+j")
        await wait_for(pilot, lambda: any(b.kind == "turn" and b.status in ("completed", "failed")
                                          for b in chat.model.blocks), timeout=180, what="the turn to end")
        turn = next(b for b in chat.model.blocks if b.kind == "turn")
        assert turn.status == "completed", turn
        session_id = chat.session_id
        await pilot.press("ctrl+q")
    store = await open_store(services.settings.database_url)
    try:
        events = await store.read_events(session_id)
    finally:
        await store.close()
    out = [e.data for e in events if e.kind == "tool.finished"]
    assert [(d["output"], d["exit_code"]) for d in out] == [("from-the-pod\n", 0)]
    assert [e.data["text"] for e in events if e.kind == "model.message"][-1] == "The pod says hello."
    sid = session_sandbox_id(session_id)
    obj = kubectl_json(k8s_cluster, "get", "sandbox", "-n", k8s_namespace, sid)
    assert obj["metadata"]["labels"][objects.LABEL_SESSION] == session_id
    # the file the tool wrote is on the Sandbox's volume (the stand-in for its PVC)
    assert (k8s_cluster.volume_dir(k8s_namespace, objects.pvc_name(sid)) / "where.txt").read_text() == "from-the-pod\n"


def test_send_wait_from_the_cli_runs_its_tool_in_the_sandbox(tmp_path: Path, k8s_cluster, k8s_namespace, gw):
    env = {**os.environ, **k8s_env(tmp_path, k8s_cluster, k8s_namespace, LITELLM_API_BASE=gw.base_url,
                                   LITELLM_API_KEY="sk-master-not-in-sandbox", LAP_TEAM=TEAM)}

    def cli(*argv: str) -> str:
        r = subprocess.run([sys.executable, "-m", "lap_tui", *argv], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        assert "Unclosed" not in r.stderr, r.stderr
        return r.stdout

    cli("agents", "create", "kube-cli", "--model", "gpt-test", "--sandbox-backend", "kubernetes")
    session_id = cli("sessions", "new", "kube-cli").strip()
    _script(gw)
    out = cli("send", session_id, "where are you?", "--wait")
    assert "The pod says hello." in out
    sid = session_sandbox_id(session_id)
    assert (k8s_cluster.volume_dir(k8s_namespace, objects.pvc_name(sid)) / "where.txt").read_text() == "from-the-pod\n"
    listed = [json.loads(line) for line in cli("sandboxes", "list", "--json").splitlines()]
    assert any(s["id"] == sid and s["backend"] == "kubernetes" for s in listed), listed
