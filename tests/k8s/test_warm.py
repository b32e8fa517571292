"""Warm starts on the real control plane and agent-sandbox v0.5.6 controller (with extensions):
an agent's SandboxTemplate and SandboxWarmPool, a session's sandbox taken through a SandboxClaim,
the pool refilling, the agent's edit reaching the template, and its deletion cleaning up."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import InvalidInput
from lap_tui.domain.ids import new_id
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.domain.session import Session
from lap_tui.sandbox import ensure_for_session
from lap_tui.sandbox.k8s import objects, warm
from lap_tui.store import open_store
from tests.k8s.lap_backend import TEAM, backend, k8s_env, k8s_settings, kubectl_json, until

POOL = 2


@pytest.fixture(params=[None, "v1alpha1"], ids=["discovered", "v1alpha1"])
async def setup(request, tmp_path: Path, k8s_cluster, k8s_namespace):
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)
    settings = k8s_settings(env, tmp_path)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    be = backend(store, settings, env, sandbox_version=request.param)  # v1alpha1: claims by template too
    agent = await store.create_agent(Agent(id=new_id(), name="warm-bot", team=TEAM, model="m",
                                           sandbox=SandboxSettings(backend="kubernetes", warm_pool=POOL,
                                                                   env=("AGENT_TOKEN",))))
    yield be, store, agent, k8s_namespace
    await be.close()
    await store.close()


def _items(cluster, kind: str, ns: str) -> list[dict]:
    return kubectl_json(cluster, "get", kind, "-n", ns)["items"]


def _waiting(cluster, ns: str, pool: str) -> list[str]:
    """The pool's ready, unclaimed Sandboxes (still owned by the pool)."""
    out = []
    for sb in _items(cluster, "sandboxes.agents.x-k8s.io", ns):
        owners = sb["metadata"].get("ownerReferences") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in sb.get("status", {}).get("conditions", []))
        if ready and any(o["kind"] == "SandboxWarmPool" and o["name"] == pool for o in owners):
            out.append(sb["metadata"]["name"])
    return out


def test_warm_pool_size_is_validated():
    with pytest.raises(InvalidInput):
        SandboxSettings(warm_pool=-1).validate()
    with pytest.raises(InvalidInput):
        SandboxSettings(warm_pool=10_000).validate()
    assert SandboxSettings(warm_pool=3).validate().warm_pool == 3
    assert SandboxSettings.from_dict(SandboxSettings(warm_pool=3).to_dict()).warm_pool == 3


async def test_a_new_session_claims_a_warm_sandbox_the_pool_refills_and_deleting_cleans_up(setup, k8s_cluster):
    be, store, agent, ns = setup
    pool = warm.pool_name(agent.id)
    await warm.sync(be, agent.id, agent.team, agent.sandbox)
    tmpl = kubectl_json(k8s_cluster, "get", "sandboxtemplates.extensions.agents.x-k8s.io", "-n", ns, pool)
    assert tmpl["metadata"]["labels"][objects.MANAGED_BY] == "lap-tui"
    assert kubectl_json(k8s_cluster, "get", "sandboxwarmpools.extensions.agents.x-k8s.io", "-n", ns,
                        pool)["spec"]["replicas"] == POOL
    await until(lambda: len(_waiting(k8s_cluster, ns, pool)) == POOL, "the pool to fill", timeout=120)
    waiting = set(_waiting(k8s_cluster, ns, pool))

    # A new session: its sandbox is one of the waiting ones, given through a claim.
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    status = await ensure_for_session(be, store, agent, session)
    assert status.ready and status.id in waiting, (status.id, waiting)
    assert (await store.get_session(session.id)).sandbox_ref == status.id
    claim = kubectl_json(k8s_cluster, "get", "sandboxclaims.extensions.agents.x-k8s.io", "-n", ns,
                         f"s-{session.id[:12]}")
    assert warm.claimed_name(claim) == status.id
    res = await be.exec(status.id, ["sh", "-c", "echo first > f.txt; cat f.txt; echo $AGENT_TOKEN"])
    # The agent's variables reach a warm sandbox through the agent's Secret (made before the pool).
    assert res.exit_code == 0 and res.stdout == b"first\nsv-agent-secret-7788\n", res
    sb = kubectl_json(k8s_cluster, "get", "sandbox", "-n", ns, status.id)
    assert sb["metadata"]["labels"][objects.LABEL_SESSION] == session.id
    listed = {s.id: s for s in await be.list()}
    assert status.id in listed and not listed[status.id].orphan
    # The same session again: the same claimed sandbox, with its file.
    again = await ensure_for_session(be, store, agent, session)
    assert again.id == status.id
    assert (await be.exec(status.id, ["cat", "f.txt"])).stdout == b"first\n"

    # The pool refills to its size, without the claimed one.
    await until(lambda: len(set(_waiting(k8s_cluster, ns, pool)) - {status.id}) == POOL, "the pool to refill",
                timeout=120)
    assert status.id not in _waiting(k8s_cluster, ns, pool)

    # Editing the agent updates the template.
    edited = replace(agent, sandbox=replace(agent.sandbox, memory="768Mi"))
    await warm.sync(be, edited.id, edited.team, edited.sandbox)
    tmpl = kubectl_json(k8s_cluster, "get", "sandboxtemplates.extensions.agents.x-k8s.io", "-n", ns, pool)
    assert tmpl["spec"]["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "768Mi"

    # Deleting the session's sandbox deletes its claim too (a claim left would get another sandbox).
    await be.delete(status.id)
    await until(lambda: not any(c["metadata"]["name"] == f"s-{session.id[:12]}"
                                for c in _items(k8s_cluster, "sandboxclaims.extensions.agents.x-k8s.io", ns)),
                "the claim to go")
    await until(lambda: status.id not in {s["metadata"]["name"] for s in _items(k8s_cluster, "sandbox", ns)},
                "the claimed sandbox to go")

    # Deleting the agent removes its template, pool, claims and the pool's sandboxes.
    other = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    second = await ensure_for_session(be, store, agent, other)
    removed = await warm.remove(be, agent.id, agent.team)
    assert removed == [f"s-{other.id[:12]}"]
    for kind in ("sandboxtemplates", "sandboxwarmpools", "sandboxclaims"):
        await until(lambda kind=kind: not _items(k8s_cluster, f"{kind}.extensions.agents.x-k8s.io", ns),
                    f"the {kind} to go")
    await until(lambda: not _items(k8s_cluster, "sandbox", ns), "the pool's and the claimed sandboxes to go",
                timeout=120)
    assert second.id


async def test_removing_an_agent_skips_a_claim_already_being_deleted(setup, k8s_cluster):
    """Deleting a claimed sandbox orphans its claim; the garbage collector's finalizer keeps the
    claim listed a while. Removing the agent then must not count it as one it deleted (CI saw it
    listed). A finalizer of our own holds the claim in that state for as long as the check takes."""
    be, store, agent, ns = setup
    await warm.sync(be, agent.id, agent.team, replace(agent.sandbox, warm_pool=0))
    spec = SandboxSpec(id="s-goingclaim01", team=agent.team, settings=agent.sandbox, agent_id=agent.id)
    body = warm.claim_object(spec, namespace=ns, version=await warm.ext_version(be))
    body["metadata"]["finalizers"] = ["lap-tui.test/hold"]
    apis = await be.apis()
    await apis.custom.create_namespaced_custom_object(warm.GROUP, body["apiVersion"].split("/")[1], ns,
                                                      warm.CLAIMS, body)
    kind = "sandboxclaims.extensions.agents.x-k8s.io"
    try:
        assert k8s_cluster.kubectl("delete", kind, "-n", ns, spec.id, "--wait=false").returncode == 0
        got = kubectl_json(k8s_cluster, "get", kind, "-n", ns, spec.id)
        assert got["metadata"].get("deletionTimestamp"), "the finalizer holds it, being deleted"
        assert await warm.remove(be, agent.id, agent.team) == []
    finally:
        k8s_cluster.kubectl("patch", kind, "-n", ns, spec.id, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    await until(lambda: not _items(k8s_cluster, kind, ns), "the claim to go")


def test_agents_create_edit_delete_own_the_pool(k8s_cluster, k8s_namespace, tmp_path: Path):
    """The real command: `agents create --warm-pool` makes the template and pool, `agents edit`
    updates them (and --warm-pool 0 removes them), `agents delete` removes them."""
    from tests.conftest import run_cli

    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)

    def cli(*args: str) -> dict:
        r = run_cli(*args, "--team", TEAM, "--json", env=env, timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def get(kind: str, name: str):
        return k8s_cluster.kubectl("get", f"{kind}.extensions.agents.x-k8s.io", "-n", k8s_namespace, name, "-o",
                                   "json")

    agent = cli("agents", "create", "pooled", "--model", "m", "--sandbox-backend", "kubernetes", "--warm-pool", "2")
    assert agent["sandbox"]["warm_pool"] == 2
    pool = warm.pool_name(agent["id"])
    assert json.loads(get("sandboxwarmpools", pool).stdout)["spec"]["replicas"] == 2
    cli("agents", "edit", "pooled", "--warm-pool", "1", "--cpu", "500m")
    assert json.loads(get("sandboxwarmpools", pool).stdout)["spec"]["replicas"] == 1
    tmpl = json.loads(get("sandboxtemplates", pool).stdout)
    assert tmpl["spec"]["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "500m"
    cli("agents", "edit", "pooled", "--warm-pool", "0")
    assert get("sandboxwarmpools", pool).returncode != 0 and get("sandboxtemplates", pool).returncode != 0
    cli("agents", "edit", "pooled", "--warm-pool", "1")
    assert get("sandboxwarmpools", pool).returncode == 0
    cli("agents", "delete", "pooled", "--yes")
    assert get("sandboxwarmpools", pool).returncode != 0 and get("sandboxtemplates", pool).returncode != 0


def test_a_cli_harness_agents_pool_runs_its_harness_image(k8s_cluster, k8s_namespace, tmp_path: Path):
    """A warm sandbox of an opencode agent naming no image runs the harness's image, as its cold
    start does (engine/cli_turn.py); an image of its own wins."""
    from lap_tui.engine.cli_turn import harness_definitions
    from lap_tui.harness.image import harness_image
    from tests.conftest import run_cli

    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)

    def cli(*args: str) -> dict:
        r = run_cli(*args, "--team", TEAM, "--json", env=env, timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def image(name: str) -> str:
        got = k8s_cluster.kubectl("get", "sandboxtemplates.extensions.agents.x-k8s.io", "-n", k8s_namespace, name,
                                  "-o", "json", check=True)
        return json.loads(got.stdout)["spec"]["podTemplate"]["spec"]["containers"][0]["image"]

    agent = cli("agents", "create", "coder", "--model", "m", "--harness", "opencode",
                "--sandbox-backend", "kubernetes", "--warm-pool", "1")
    pool = warm.pool_name(agent["id"])
    want = harness_image(harness_definitions(k8s_settings(env, tmp_path))["opencode"])
    assert image(pool) == want and "opencode" in want
    cli("agents", "edit", "coder", "--image", "registry.example/own:1")
    assert image(pool) == "registry.example/own:1"
    cli("agents", "delete", "coder", "--yes")


async def test_a_turn_of_a_warm_agent_runs_its_first_command_on_the_claimed_sandbox(k8s_cluster, k8s_namespace,
                                                                                    tmp_path: Path):
    """The engine end to end (scripted gateway over real HTTP): the turn's tool runs in the pool's
    sandbox, and the session's sandbox_ref names it."""
    from lap_tui.domain.journal import TurnStatus
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine
    from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call

    with ScriptedGateway(models=["gpt-test"]) as gw:
        env = k8s_env(tmp_path, k8s_cluster, k8s_namespace, LITELLM_API_BASE=gw.base_url,
                      LITELLM_API_KEY="sk-master-not-in-sandbox")
        settings = k8s_settings(env, tmp_path)
        store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
        engine = build_engine(settings, store, options=EngineOptions(lease_ttl=5.0))
        try:
            agent = await store.create_agent(Agent(id=new_id(), name="warm-turn", team=TEAM, model="gpt-test",
                                                   sandbox=SandboxSettings(backend="kubernetes", warm_pool=1)))
            pool = warm.pool_name(agent.id)
            be = backend(store, settings, env)
            await warm.sync(be, agent.id, agent.team, agent.sandbox)
            await until(lambda: len(_waiting(k8s_cluster, k8s_namespace, pool)) == 1, "the pool to fill",
                        timeout=120)
            waiting = _waiting(k8s_cluster, k8s_namespace, pool)
            session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
            gw.push(stream(["Running."], tool_calls=[tool_call("c1", "bash", json.dumps({"command": "echo warm"}))]),
                    stream(["Done."]))
            turn_id = await engine.send(session.id, "run it")
            await engine.start(session.id)
            turn = await store.get_turn(turn_id)
            assert turn.status is TurnStatus.COMPLETED, turn.error
            out = [e.data for e in await store.read_events(session.id) if e.kind == "tool.finished"]
            assert out[0]["output"] == "warm\n" and out[0]["exit_code"] == 0
            assert (await store.get_session(session.id)).sandbox_ref == waiting[0]
            await warm.remove(be, agent.id, agent.team)
            await be.close()
        finally:
            await engine.close()
            await store.close()
