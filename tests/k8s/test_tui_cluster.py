"""The app on the real cluster (issue 13 item 4, issue 11 item 6): the Sandboxes view shows a
cluster sandbox's pod phase and node from the watch; `d` shows its conditions and Events, `l`
follows its log; `:ctx` switches between two contexts of one kubeconfig; `:ns` switches team."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.sandbox import backend_for, ensure_for_session
from lap_tui.store import open_store
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen
from lap_tui.tui.screens.sandboxes import SandboxesScreen
from lap_tui.tui.services import Services
from lap_tui.tui.widgets.status_bar import StatusBar
from lap_tui.tui.widgets.table import LapTable
from tests.k8s.lap_backend import TEAM, k8s_env, k8s_settings
from tests.tui.conftest import wait_for

OTHER_TEAM = "team2"
SECOND = "second-ctx"


def two_context_kubeconfig(cluster, tmp_path: Path) -> Path:
    """The dev kubeconfig with a second context name for the same server and user."""
    data = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ctx = next(c for c in data["contexts"] if c["name"] == cluster.context)
    data["contexts"].append({"name": SECOND, "context": dict(ctx["context"])})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


@pytest.fixture
async def cluster_app(tmp_path: Path, k8s_cluster, k8s_namespace):
    other_ns = k8s_namespace + "-b"
    k8s_cluster.kubectl("create", "namespace", other_ns, check=True)
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace,
                  LAP_KUBECONFIG=str(two_context_kubeconfig(k8s_cluster, tmp_path)),
                  LAP_KUBE_NAMESPACES=f"{TEAM}={k8s_namespace},{OTHER_TEAM}={other_ns}", LAP_TEAM=TEAM)
    settings = k8s_settings(env, tmp_path)
    url = f"sqlite://{tmp_path / 'lap.db'}"
    store = await open_store(url)
    backend = backend_for(settings, store, environ=env, ready_timeout=120)
    sids = {}
    for team in (TEAM, OTHER_TEAM):
        agent = await store.create_agent(Agent(id=new_id(), name=f"bot-{team}", team=team, model="m",
                                               sandbox=SandboxSettings(backend="kubernetes")))
        session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        sids[team] = (await ensure_for_session(backend, store, agent, session)).id

    async def app_store():
        return await open_store(url)

    services = Services(settings=settings, open_store=app_store,
                        make_sandboxes=lambda s: backend_for(settings, s, environ=env, ready_timeout=120))
    yield LapApp(services, view="sandboxes"), sids, k8s_namespace, other_ns
    await backend.close()
    await store.close()
    k8s_cluster.kubectl("delete", "namespace", other_ns, "--wait=false")


def cell(app, key, column) -> str:
    table = app.screen.query_one(LapTable)
    return str(table.get_cell(key, column)) if key in table.rows else ""


def status_text(app) -> str:
    return str(app.screen.query_one(StatusBar).render())


async def test_sandboxes_view_describe_and_logs_on_the_cluster(cluster_app, k8s_cluster):
    app, sids, ns, _ = cluster_app
    sid = sids[TEAM]
    node = k8s_cluster.kubectl("get", "pod", "-n", ns, sid, "-o", "jsonpath={.spec.nodeName}", check=True).stdout
    assert node
    k8s_cluster.append_log(ns, sid, "first-line-from-the-pod")
    # An Event with a message written to look like markup and a terminal escape: shown as text.
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{sid}.hostile", "namespace": ns},
             "involvedObject": {"kind": "Pod", "name": sid, "namespace": ns}, "reason": "Hostile",
             "message": "[bold red]not markup[/] \x1b]0;title\x07end", "type": "Warning"}
    k8s_cluster.kubectl("create", "-f", "-", input=json.dumps(event), check=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and cell(app, sid, "pod") == "Running"
                       and cell(app, sid, "node") == node, what="the pod's phase and node from the watch")
        assert cell(app, sid, "backend") == "kubernetes"
        table = app.screen.query_one(LapTable)
        table.move_cursor(row=table.get_row_index(sid))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxDetailScreen)
                       and app.screen.described is not None, what="describe")
        text = str(app.screen.query_one("#describe").render())
        assert "Ready=True" in text, text  # the Sandbox's condition
        assert f"phase Running on {node}" in text
        # The scheduler's Event for the pod (kwok's node is a real Node object to the scheduler).
        assert "Pod Scheduled" in text, text
        assert "Warning Pod Hostile: [bold red]not markup[/]" in text and "\x1b" not in text
        assert app.screen.query_one("#describe-box").has_focus
        await wait_for(pilot, lambda: any("first-line-from-the-pod" in line for line in app.screen.query_one("Log").lines),
                       what="the log tail")
        # l: the log follows (pods/log with follow): a line written now appears.
        await pilot.press("l")
        assert app.screen.query_one("Log").has_focus
        k8s_cluster.append_log(ns, sid, "a-later-line")
        await wait_for(pilot, lambda: any("a-later-line" in line for line in app.screen.query_one("Log").lines),
                       what="the followed line")


async def test_ctx_switches_context_without_restarting(cluster_app, k8s_cluster):
    app, sids, _, _ = cluster_app
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and cell(app, sids[TEAM], "pod") ==
                       "Running", what="the first context's rows")
        await wait_for(pilot, lambda: f"ctx {k8s_cluster.context}" in status_text(app), what="the context shown")
        before = app.sandboxes
        from lap_tui.tui import commands

        offered = commands.completions(app)  # tab on the command line
        assert f"ctx {SECOND}" in offered and f"ns {OTHER_TEAM}" in offered and "ns all" in offered
        await app.run_command("ctx no-such-context")
        await wait_for(pilot, lambda: any("no context" in str(n.message) for n in app._notifications), what="refused")
        assert app.sandboxes is before
        await app.run_command(f"ctx {SECOND}")
        assert app.sandboxes is not before
        kube = app.sandboxes.backend("kubernetes")
        assert (await kube.apis()).context == SECOND  # the client really loaded the other context
        await wait_for(pilot, lambda: f"ctx {SECOND}" in status_text(app), what="the new context shown")
        # The view re-listed from the new context's watch (same server: the same sandboxes).
        await wait_for(pilot, lambda: cell(app, sids[TEAM], "pod") == "Running", what="rows from the new context")
        # Offered in the palette too, one entry per context.
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert f"Context: {SECOND}" in titles and f"Context: {k8s_cluster.context}" in titles
        assert f"Namespace: {OTHER_TEAM}" in titles


async def test_ns_switches_team(cluster_app):
    app, sids, ns, other_ns = cluster_app
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen)
                       and all(cell(app, s, "pod") == "Running" for s in sids.values()), what="both teams' rows")
        await wait_for(pilot, lambda: "ns all" in status_text(app), what="every namespace shown")
        await app.run_command(f"ns {OTHER_TEAM}")
        table = app.screen.query_one(LapTable)
        await wait_for(pilot, lambda: sids[TEAM] not in table.rows, what="the other team's row hidden")
        assert sids[OTHER_TEAM] in table.rows
        assert app.settings["team"] == OTHER_TEAM  # new agents default to it
        await wait_for(pilot, lambda: f"ns {other_ns}" in status_text(app), what="the namespace shown")
        await app.run_command(f"ns {ns}")  # by namespace too
        await wait_for(pilot, lambda: sids[OTHER_TEAM] not in table.rows and sids[TEAM] in table.rows,
                       what="team1 by its namespace")
        await app.run_command("ns all")
        await wait_for(pilot, lambda: all(s in table.rows for s in sids.values()), what="every team again")
        await app.run_command("ns Not_A_Team")
        await wait_for(pilot, lambda: any("Not_A_Team" in str(n.message) for n in app._notifications), what="refused")
        assert all(s in table.rows for s in sids.values())
