"""Warm pools in the lists and the Sandboxes view (issue 13 item 1), on the real control plane and
agent-sandbox v0.5.6 controller: an agent's waiting Sandboxes carry only the controller's labels,
yet `lap-tui sandboxes list --json` and the view show them as pooled (which agent's pool), a claim
moves one to claimed (by which session) on screen through the watch, and the pool's refill shows
as new pooled rows; the `o` key filters by origin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.sandbox import backend_for, ensure_for_session
from lap_tui.sandbox.k8s import objects, warm
from lap_tui.store import open_store
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.sandboxes import SandboxesScreen
from lap_tui.tui.services import Services
from lap_tui.tui.widgets.table import LapTable
from tests.k8s.lap_backend import TEAM, backend, k8s_env, k8s_settings, kubectl_json, until
from tests.tui.conftest import wait_for

POOL = 2


def _waiting(cluster, ns: str, pool: str) -> set[str]:
    """The pool's Ready, unclaimed Sandboxes, as the cluster has them (kubectl)."""
    out = set()
    for sb in kubectl_json(cluster, "get", "sandboxes.agents.x-k8s.io", "-n", ns)["items"]:
        owners = sb["metadata"].get("ownerReferences") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in sb.get("status", {}).get("conditions", []))
        if ready and any(o["kind"] == "SandboxWarmPool" and o["name"] == pool for o in owners):
            out.add(sb["metadata"]["name"])
    return out


@pytest.fixture
async def warm_setup(tmp_path: Path, k8s_cluster, k8s_namespace):
    url = f"sqlite://{tmp_path / 'lap.db'}"
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace, LAP_TEAM=TEAM, LAP_DATABASE_URL=url)  # the CLI's store too
    settings = k8s_settings(env, tmp_path)
    store = await open_store(url)
    be = backend(store, settings, env)
    agent = await store.create_agent(Agent(id=new_id(), name="pool-bot", team=TEAM, model="m",
                                           sandbox=SandboxSettings(backend="kubernetes", warm_pool=POOL)))
    pool = warm.pool_name(agent.id)
    try:
        await warm.sync(be, agent.id, agent.team, agent.sandbox)
        await until(lambda: len(_waiting(k8s_cluster, k8s_namespace, pool)) == POOL, "the pool to fill", timeout=120)
        # What the controller gives a waiting Sandbox: its own labels, none of lap-tui's.
        for name in _waiting(k8s_cluster, k8s_namespace, pool):
            labels = kubectl_json(k8s_cluster, "get", "sandbox", "-n", k8s_namespace, name)["metadata"]["labels"]
            assert objects.MANAGED_BY not in labels and "agents.x-k8s.io/launch-type" in labels, labels
        yield env, settings, url, store, be, agent, pool, k8s_namespace
    finally:
        await warm.remove(be, agent.id, agent.team)
        await be.close()
        await store.close()


async def test_sandboxes_list_json_shows_a_pools_waiting_sandboxes_as_pooled(warm_setup, k8s_cluster):
    from tests.conftest import run_cli

    env, _, _, store, be, agent, pool, ns = warm_setup
    waiting = _waiting(k8s_cluster, ns, pool)
    r = run_cli("sandboxes", "list", "--json", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}
    assert waiting <= rows.keys(), (waiting, sorted(rows))
    for name in waiting:
        d = rows[name]
        assert (d["origin"], d["pool"], d["claim"]) == ("pooled", pool, ""), d
        assert (d["team"], d["agent_id"], d["session_id"]) == (TEAM, agent.id, None), d
        assert not d["orphan"] and d["warning"] is None, d  # its pool owns it
    # Claimed: by the session, through its claim; the pool's other one stays pooled.
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    claimed = await ensure_for_session(be, store, agent, session)
    r = run_cli("sandboxes", "list", "--json", env=env, timeout=120)
    rows = {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}
    d = rows[claimed.id]
    assert (d["origin"], d["pool"], d["claim"], d["session_id"]) == ("claimed", pool, f"s-{session.id[:12]}",
                                                                     session.id), d
    assert not d["orphan"]
    assert [n for n in waiting - {claimed.id} if rows[n]["origin"] == "pooled"] == list(waiting - {claimed.id})
    # The table for people: an ORIGIN column.
    text = run_cli("sandboxes", "list", env=env, timeout=120).stdout
    assert "ORIGIN" in text.splitlines()[0]
    assert any(claimed.id in line and "claimed" in line for line in text.splitlines()), text


def cell(app, key, column) -> str:
    table = app.screen.query_one(LapTable)
    return str(table.get_cell(key, column)) if key in table.rows else ""


def rows_of(app, origin: str) -> set[str]:
    table = app.screen.query_one(LapTable)
    return {k.value for k in table.rows if str(table.get_cell(k, "origin")) == origin}


async def test_sandboxes_delete_finds_a_pooled_sandbox_through_the_backends_list(warm_setup, k8s_cluster):
    """A waiting Sandbox has no store row: `sandboxes delete` finds it in the backend's list (by id
    or a unique prefix, as the view does) and deletes it; the pool makes another."""
    from tests.conftest import run_cli

    env, _, _, store, be, agent, pool, ns = warm_setup
    first, second = sorted(_waiting(k8s_cluster, ns, pool))
    assert await store.get_sandbox(first) is None
    r = run_cli("sandboxes", "delete", first, "--json", env=env, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout) == {"deleted": first}
    r = run_cli("sandboxes", "delete", second[:-1], env=env, timeout=120)  # a prefix only it has
    assert r.returncode == 0 and f"deleted sandbox {second}" in r.stdout, (r.stdout, r.stderr)

    def gone(name: str) -> bool:
        got = k8s_cluster.kubectl("get", "sandbox", "-n", ns, name, "-o", "json")
        return got.returncode != 0 or bool(json.loads(got.stdout)["metadata"].get("deletionTimestamp"))

    await until(lambda: gone(first) and gone(second), "the deleted sandboxes to go", timeout=120)
    await until(lambda: len(_waiting(k8s_cluster, ns, pool) - {first, second}) == POOL, "the pool to refill",
                timeout=120)


async def test_the_view_shows_pooled_then_claimed_through_the_watch_and_the_refill(warm_setup, k8s_cluster):
    env, settings, url, store, be, agent, pool, ns = warm_setup
    waiting = _waiting(k8s_cluster, ns, pool)

    async def app_store():
        return await open_store(url)

    services = Services(settings=settings, open_store=app_store,
                        make_sandboxes=lambda s: backend_for(settings, s, environ=env, ready_timeout=120))
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.sandboxes is not None
                       and rows_of(app, "pooled") >= waiting, what=f"the pool's {waiting} shown as pooled")
        for name in waiting:
            assert cell(app, name, "agent") == "pool-bot" and cell(app, name, "team") == TEAM
            assert cell(app, name, "session") == "" and "⚠" not in cell(app, name, "phase")
        # A claim (this process, as a worker would): the row turns claimed, with its session.
        session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        claimed = await ensure_for_session(be, store, agent, session)
        assert claimed.id in waiting
        await wait_for(pilot, lambda: cell(app, claimed.id, "origin") == "claimed"
                       and cell(app, claimed.id, "session") == session.id[:8], what="the claimed row")
        # The pool refills: new pooled rows, the claimed one not among them.
        await wait_for(pilot, lambda: len(rows_of(app, "pooled") - waiting) >= 1
                       and claimed.id not in rows_of(app, "pooled"), timeout=120, what="the refill's new pooled row")
        refill = _waiting(k8s_cluster, ns, pool)
        await wait_for(pilot, lambda: rows_of(app, "pooled") >= refill, timeout=120, what=f"{refill} pooled")
        # o: pooled only, then claimed only, then own (none of this pool's), then all. (Other tests'
        # sandboxes may show too: the checks look at this pool's rows, named after it.)
        table = app.screen.query_one(LapTable)

        def ours() -> set[str]:
            return {k.value for k in table.rows if k.value.startswith(pool + "-")}

        await pilot.press("o")
        await wait_for(pilot, lambda: rows_of(app, "pooled") == {k.value for k in table.rows}
                       and ours() >= refill and claimed.id not in table.rows, what="pooled only")
        assert "origin pooled" in str(app.screen.query_one("#title").render())
        await pilot.press("o")
        await wait_for(pilot, lambda: ours() == {claimed.id} and rows_of(app, "claimed") == {k.value for k in table.rows},
                       what="claimed only")
        await pilot.press("o")
        await wait_for(pilot, lambda: not ours() and table.row_count == len(rows_of(app, "-")), what="own only")
        await pilot.press("o")
        await wait_for(pilot, lambda: ours() >= refill | {claimed.id}, what="every row again")
