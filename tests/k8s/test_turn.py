"""A builtin-agent turn end to end on a Kubernetes sandbox (real API server and controller,
scripted gateway over real HTTP), and a pod deleted while a tool runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import TurnStatus
from lap_tui.domain.sandbox import SandboxPhase, session_sandbox_id
from lap_tui.domain.session import Session
from lap_tui.engine.engine import EngineOptions
from lap_tui.engine.services import build_engine
from lap_tui.sandbox.k8s import objects
from lap_tui.store import open_store
from tests.k8s.lap_backend import TEAM, k8s_env, k8s_settings, kubectl_json, until
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call


@pytest.fixture
async def setup(tmp_path: Path, k8s_cluster, k8s_namespace):
    with ScriptedGateway(models=["gpt-test"]) as gw:
        env = k8s_env(tmp_path, k8s_cluster, k8s_namespace, LITELLM_API_BASE=gw.base_url,
                      LITELLM_API_KEY="sk-master-not-in-sandbox")
        settings = k8s_settings(env, tmp_path)
        store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
        engine = build_engine(settings, store, options=EngineOptions(lease_ttl=5.0))
        agent = await store.create_agent(Agent(id=new_id(), name="kube-bot", team=TEAM, model="gpt-test",
                                               sandbox=SandboxSettings(backend="kubernetes")))
        session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        yield engine, store, gw, session, k8s_namespace
        await engine.close()
        await store.close()


def bash(id_: str, command: str):
    return tool_call(id_, "bash", json.dumps({"command": command}))


def kinds(events):
    return [e.kind for e in events if e.kind != "model.delta"]


async def test_turn_runs_its_tools_in_the_sandbox_and_the_watch_sees_it(setup, k8s_cluster):
    engine, store, gw, session, ns = setup
    assert engine.sandboxes.name == "kubernetes"
    sid = session_sandbox_id(session.id)
    seen: list = []

    async def watching():
        async for ev in engine.sandboxes.watch():
            seen.append(ev)

    watcher = asyncio.create_task(watching())
    gw.push(stream(["Looking."], tool_calls=[bash("c1", "echo hello > f.txt; cat f.txt"),
                                             tool_call("c2", "read_file", '{"path": "/workspace/f.txt"}'),
                                             tool_call("c3", "list_dir", "{}")]),
            stream(["It says hello."]))
    turn_id = await engine.send(session.id, "what is in f.txt?")
    await engine.start(session.id)
    turn = await store.get_turn(turn_id)
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await store.read_events(session.id)
    assert kinds(events) == ["turn.queued", "user.message", "turn.started", "model.requested", "model.message",
                             "tool.started", "tool.finished", "tool.started", "tool.finished", "tool.started",
                             "tool.finished", "model.requested", "model.message", "turn.completed"]
    out = [e.data for e in events if e.kind == "tool.finished"]
    assert out[0]["output"] == "hello\n" and out[0]["exit_code"] == 0
    assert out[1]["output"] == "hello\n" and "f.txt" in out[2]["output"]
    # The session's sandbox is a Sandbox in the team's namespace, labelled with the session.
    obj = kubectl_json(k8s_cluster, "get", "sandbox", "-n", ns, sid)
    assert obj["metadata"]["labels"][objects.LABEL_SESSION] == session.id
    assert (await store.get_session(session.id)).sandbox_ref == sid
    # The Sandboxes view's feed: the watch saw it appear and become ready.
    await until(lambda: any(e.status.id == sid and e.status.ready for e in seen), "the watch to show it ready")
    await engine.sandboxes.suspend(sid)
    await until(lambda: any(e.status.id == sid and e.status.phase is SandboxPhase.SUSPENDED for e in seen),
                "the watch to show it suspended")
    watcher.cancel()
    # The next message resumes it and goes on in the same workspace.
    gw.push(stream([], tool_calls=[bash("c4", "cat f.txt")]), stream(["still hello"]))
    turn_id = await engine.send(session.id, "again?")
    await engine.start(session.id)
    assert (await store.get_turn(turn_id)).status is TurnStatus.COMPLETED
    last = [e.data for e in await store.read_events(session.id) if e.kind == "tool.finished"][-1]
    assert last["output"] == "hello\n"


async def test_pod_deleted_mid_tool_interrupts_it_and_the_turn_resumes(setup, k8s_cluster):
    engine, store, gw, session, ns = setup
    sid = session_sandbox_id(session.id)
    vol = k8s_cluster.volume_dir(ns, objects.pvc_name(sid))
    gw.push(stream([], tool_calls=[bash("c1", "echo kept > kept.txt")]),
            stream([], tool_calls=[bash("c2", "echo run >> runs; while [ ! -f release ]; do sleep 0.1; done")]),
            stream([], tool_calls=[bash("c3", "cat runs kept.txt")]),
            stream(["done"]))
    turn_id = await engine.send(session.id, "go")
    driver = engine.start(session.id)
    try:
        await until(lambda: (vol / "runs").exists(), "the long tool to start", timeout=120)
        k8s_cluster.kubectl("delete", "pod", "-n", ns, sid, "--wait=false", check=True)
        await asyncio.wait_for(asyncio.shield(driver), 180)
    finally:
        vol.mkdir(parents=True, exist_ok=True)
        (vol / "release").touch()  # kwok runs the command as a host process that outlives its pod
    turn = await store.get_turn(turn_id)
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await store.read_events(session.id)
    calls = [(e.kind, e.data.get("tool_call_id")) for e in events if e.kind.startswith("tool.")]
    assert calls == [("tool.started", "c1"), ("tool.finished", "c1"), ("tool.started", "c2"),
                     ("tool.interrupted", "c2"), ("tool.started", "c3"), ("tool.finished", "c3")]
    interrupted = next(e.data for e in events if e.kind == "tool.interrupted")
    assert "went away" in interrupted["reason"]
    # Run once, not twice; the workspace survived the pod.
    assert [e.data for e in events if e.kind == "tool.finished"][-1]["output"] == "run\nkept\n"
    # The model was told the call was interrupted.
    tool_msgs = [m for m in gw.chat_requests[2].body["messages"] if m["role"] == "tool"]
    assert any(m["tool_call_id"] == "c2" and "interrupted" in m["content"] for m in tool_msgs)
