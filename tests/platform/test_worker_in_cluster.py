"""`lap-tui worker` as the Deployment runs it, with only the shipped ServiceAccount's token
and Role (as in-cluster; kwok's pods run no images, so the worker runs here with that
identity): the ConfigMap's settings, Postgres, the scripted gateway; a queued turn's command
runs in a Sandbox in the team namespace, and the worker stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import TurnStatus
from lap_tui.domain.sandbox import session_sandbox_id
from lap_tui.domain.session import Session
from lap_tui.engine.services import build_engine
from lap_tui.store import open_store
from tests.platform.manifests import (SYSTEM_NS, TEAM_NS, apply, delete_namespaces, find, render,
                                      token_kubeconfig, unique_names)
from tests.platform.workers import WorkerProc, probe
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call
from tests.support.waiting import until

TEAM = "team1"


async def test_worker_with_the_service_account_runs_a_turn(k8s_cluster, pg_url, tmp_path: Path):
    names = unique_names()
    sys_ns, team_ns = names[SYSTEM_NS], names[TEAM_NS]
    objs = render(k8s_cluster, names)
    try:
        assert apply(k8s_cluster, objs).returncode == 0
        kc = token_kubeconfig(k8s_cluster, sys_ns, "lap-tui-worker", tmp_path / "sa.kubeconfig")
        with ScriptedGateway(models=["gpt-test"]) as gw:
            gw.push(stream(["Running it."], tool_calls=[
                        tool_call("c1", "bash", json.dumps({"command": "echo from-the-cluster > f.txt; cat f.txt"}))]),
                    stream(["Done."]))
            # The pod's environment: the ConfigMap, then what the Secret and the token give.
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
            env.update(find(objs, "ConfigMap")["data"])
            env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
                       XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1",
                       LAP_DATABASE_URL=pg_url, LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY="sk-in-cluster-key",
                       LAP_KUBECONFIG=str(kc), LAP_KUBE_CONTEXT="sa", LAP_KUBE_NAMESPACES=f"{TEAM}={team_ns}",
                       LAP_TEAM=TEAM)
            assert env["LAP_SANDBOX_BACKEND"] == "kubernetes"
            store = await open_store(pg_url)
            try:
                agent = await store.create_agent(Agent(id=new_id(), name="cluster-bot", team=TEAM, model="gpt-test",
                                                       sandbox=SandboxSettings(backend="kubernetes")))
                session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
                engine = build_engine(load_settings(env, cwd=tmp_path), store)
                turn_id = await engine.queue(session.id, "run it")
                await engine.close()

                w = WorkerProc(env, tmp_path / "w", "--health-port", "0", "--health-host", "127.0.0.1",
                               "--poll", "0.1")
                try:
                    base = await until(w.health_url, "the health port")
                    await until(lambda: probe(base + "/readyz")[0] == 200, "ready")
                    await until(lambda: _finished(store, turn_id), "the turn to finish", timeout=180, interval=0.2)
                    turn = await store.get_turn(turn_id)
                    assert turn.status is TurnStatus.COMPLETED, (turn.error, w.log())
                    out = [e.data for e in await store.read_events(session.id) if e.kind == "tool.finished"]
                    assert out[0]["output"] == "from-the-cluster\n" and out[0]["exit_code"] == 0
                    sid = session_sandbox_id(session.id)
                    k8s_cluster.kubectl("get", "sandbox", sid, "-n", team_ns, check=True)
                    os.kill(w.pid, signal.SIGTERM)
                    assert await until(lambda: w.proc.poll() is not None and (w.proc.returncode, ),
                                       "the worker to exit") == (0, ), w.log()
                finally:
                    w.stop()
                # No call was refused (the backend's errors read "403 Forbidden ..." or "403 Invalid ...").
                assert not re.search(r"(?<![\w.:/,-])403 |forbidden", w.log(), re.I), w.log()
            finally:
                await store.close()
    finally:
        delete_namespaces(k8s_cluster, names)


async def _finished(store, turn_id: str) -> bool:
    return (await store.get_turn(turn_id)).status.finished
