"""A sandbox pod's volumes belong to the harness images' user: the Sandbox's and the
SandboxTemplate's pod template carry `securityContext.fsGroup` (objects.FS_GROUP, the uid/gid of
harnesses/*/Dockerfile's `agent`), as the real API server stores them (strict validation), and
the pod the controller makes from the Sandbox has it too."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.sandbox.k8s import objects, warm
from lap_tui.store import open_store
from tests.k8s.lap_backend import TEAM, backend, k8s_env, k8s_settings, kubectl_json

ROOT = Path(__file__).resolve().parents[2]
WANT = {"fsGroup": objects.FS_GROUP, "fsGroupChangePolicy": "OnRootMismatch"}


def test_fs_group_is_the_cli_harness_images_uid():
    """One number: every CLI harness image's `agent` (its group made with it: useradd's user
    group, gid = uid on these bases) is the group the pods' volumes are given."""
    found = {}
    for dockerfile in sorted(ROOT.glob("harnesses/*/Dockerfile")):
        m = re.search(r"useradd\b[^\n]*--uid (\d+) agent", dockerfile.read_text())
        assert m, dockerfile
        found[dockerfile.parent.name] = int(m.group(1))
    assert {"opencode", "claude-code", "codex"} <= set(found)
    # builtin's agent (uid 1000) writes through the supplementary group fsGroup adds.
    assert {n: u for n, u in found.items() if n != "builtin"} == dict.fromkeys(set(found) - {"builtin"},
                                                                              objects.FS_GROUP)


async def test_the_sandbox_and_template_stored_have_the_fs_group(k8s_cluster, k8s_namespace, tmp_path: Path):
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    b = backend(store, k8s_settings(env, tmp_path), env)
    agent_id = uuid.uuid4().hex
    try:
        st = await b.ensure(SandboxSpec(id="s-fsgroup0001", team=TEAM, settings=SandboxSettings(),
                                        agent_id=agent_id, session_id=uuid.uuid4().hex))
        assert st.ready
        sb = kubectl_json(k8s_cluster, "get", "sandboxes.agents.x-k8s.io", "-n", k8s_namespace, "s-fsgroup0001")
        assert sb["spec"]["podTemplate"]["spec"]["securityContext"] == WANT
        pod = kubectl_json(k8s_cluster, "get", "pod", "-n", k8s_namespace, "s-fsgroup0001")
        assert {k: pod["spec"]["securityContext"].get(k) for k in WANT} == WANT
        await warm.sync(b, agent_id, TEAM, SandboxSettings(warm_pool=1))
        tmpl = kubectl_json(k8s_cluster, "get", "sandboxtemplates.extensions.agents.x-k8s.io", "-n", k8s_namespace,
                            warm.pool_name(agent_id))
        assert tmpl["spec"]["podTemplate"]["spec"]["securityContext"] == WANT
    finally:
        await warm.remove(b, agent_id, TEAM)
        await b.close()
        await store.close()
