"""The Kubernetes backend's lifecycle end to end on a real cluster of the user's (kind, via
`bin/kind-up.sh`, or any cluster with agent-sandbox installed), with a real image.

It runs only when `LAP_TEST_KUBECONFIG` names a kubeconfig (and `LAP_TEST_KUBE_CONTEXT`, when
given, one of its contexts) whose cluster answers and serves agent-sandbox
(`agents.x-k8s.io`); otherwise it skips and says which of these is missing. This is the one
real-part test that skips under `CI=true` too: CI has no real cluster (no Docker on the build
machines), and the same lifecycle runs there on the `bin/k8s-dev` control plane
(tests/k8s/test_backend.py). docs/KUBERNETES.md says how to run it against kind:

    bin/kind-up.sh
    LAP_TEST_KUBECONFIG=~/.kube/config LAP_TEST_KUBE_CONTEXT=kind-agent-sbx bin/test tests/k8s/test_real_cluster.py

Pointed at bin/k8s-dev (`LAP_TEST_KUBECONFIG=$(bin/k8s-dev status | awk '/^kubeconfig:/ {print $2}')`)
it runs too: there the pod's node is a kwok node, and the one place the test accepts kwok's
behaviour is where the backend does (lap_tui/sandbox/k8s/execws.py `exit_code`): a non-zero
exit arrives as kwok's 500 "exit status N" instead of the kubelet's `NonZeroExitCode` Status
with an `ExitCode` cause. On any other node the kubelet's shape is required.

`LAP_TEST_IMAGE` picks the image (default python:3.12-slim, the backend's default; it needs
sh, setsid, head and realpath). The test makes its own namespace and deletes it at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from lap_tui.config import load_settings
from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.errors import NotFound
from lap_tui.domain.sandbox import SandboxError, SandboxPhase, SandboxSpec
from lap_tui.sandbox.k8s import KubernetesBackend, execws, objects
from lap_tui.sandbox.k8s.client import connect, served_versions
from lap_tui.store import open_store

KUBECONFIG = os.environ.get("LAP_TEST_KUBECONFIG", "")
CONTEXT = os.environ.get("LAP_TEST_KUBE_CONTEXT", "")
IMAGE = os.environ.get("LAP_TEST_IMAGE", "") or objects.DEFAULT_IMAGE
TEAM = "realtest"
KWOK_NODE = "kwok.x-k8s.io/node"  # the annotation kwok's nodes carry

pytestmark = pytest.mark.timeout(900)  # a real node may pull the image first


@pytest.fixture
async def cluster() -> Any:
    """Clients on the cluster LAP_TEST_KUBECONFIG names, and a fresh namespace on it; skips
    (even under CI=true: no real cluster there) when it is not set, not reachable, or has no agent-sandbox."""
    if not KUBECONFIG:
        pytest.skip("LAP_TEST_KUBECONFIG is not set: no real cluster to run on (see docs/KUBERNETES.md)")
    if not Path(KUBECONFIG).expanduser().is_file():
        pytest.skip(f"LAP_TEST_KUBECONFIG={KUBECONFIG} is not a file")
    try:
        apis = await asyncio.wait_for(connect(kubeconfig=str(Path(KUBECONFIG).expanduser()), context=CONTEXT), 20)
    except (SandboxError, asyncio.TimeoutError) as exc:
        pytest.skip(f"cannot load {KUBECONFIG} (context {CONTEXT or 'current'}): {exc}")
    try:
        try:
            await asyncio.wait_for(apis.client.VersionApi(apis.api).get_code(), 20)
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is a reason to skip
            pytest.skip(f"the cluster of {KUBECONFIG} ({apis.context}) is not reachable: {exc}")
        try:
            versions = await asyncio.wait_for(served_versions(apis), 20)
        except SandboxError as exc:
            pytest.skip(f"the cluster {apis.context} does not serve agent-sandbox: {exc}")
        ns = "lap-real-" + uuid.uuid4().hex[:8]
        await apis.core.create_namespace({"metadata": {"name": ns, "labels": {objects.MANAGED_BY: "lap-tui"}}})
        try:
            yield apis, ns, versions
        finally:
            await apis.core.delete_namespace(ns)
    finally:
        await apis.close()


async def until(cond: Any, what: str, timeout: float = 180.0) -> None:
    """Wait for a state the backend does not report (a pod or PVC gone), bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _gone(call: Any, *args: Any) -> bool:
    try:
        await call(*args)
    except Exception as exc:  # noqa: BLE001 - the client's ApiException: only a 404 means gone
        if getattr(exc, "status", None) == 404:
            return True
        raise
    return False


def kubelet_exit_code(status: dict[str, Any]) -> int | None:
    """The code of a kubelet's `NonZeroExitCode` Status (its `ExitCode` cause), else None."""
    if status.get("status") != "Failure" or status.get("reason") != "NonZeroExitCode":
        return None
    for cause in (status.get("details") or {}).get("causes") or ():
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    return None


async def test_lifecycle_on_a_real_cluster(cluster, tmp_path: Path, monkeypatch):
    apis, ns, versions = cluster
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path),
           "LAP_KUBECONFIG": str(Path(KUBECONFIG).expanduser()), "LAP_KUBE_CONTEXT": apis.context,
           "LAP_KUBE_NAMESPACES": f"{TEAM}={ns}", "LAP_SANDBOX_IMAGE": IMAGE}
    settings = load_settings(env, cwd=tmp_path)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    b = KubernetesBackend(store, settings, environ=env, ready_timeout=600)
    statuses: list[dict[str, Any]] = []
    real_exit_code = execws.exit_code

    def spy(status_json: bytes | str) -> int:  # the error channel's Status, as the backend reads it
        statuses.append(json.loads(status_json))
        return real_exit_code(status_json)

    monkeypatch.setattr(execws, "exit_code", spy)
    sid = "s-real" + uuid.uuid4().hex[:8]
    try:
        # ensure -> Ready: a real Sandbox, its pod Ready in the image asked for
        st = await b.ensure(SandboxSpec(id=sid, team=TEAM, settings=SandboxSettings()))
        assert st.ready and st.phase is SandboxPhase.RUNNING and st.team == TEAM
        assert await b.version() == versions[0]
        pod = await apis.core.read_namespaced_pod(sid, ns)
        assert pod.spec.containers[0].image == IMAGE
        node = await apis.core.read_node(pod.spec.node_name)
        on_kwok = KWOK_NODE in (node.metadata.annotations or {})

        # exec: both streams and a real non-zero exit code, in the shape the node sends
        statuses.clear()
        r = await b.exec(sid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
        assert len(statuses) == 1
        if on_kwok:  # accepted only on kwok, as the backend does: Go's os/exec error in a 500
            assert kubelet_exit_code(statuses[0]) == 3 or statuses[0]["message"].endswith("exit status 3"), statuses
        else:
            assert kubelet_exit_code(statuses[0]) == 3, statuses
        statuses.clear()
        assert (await b.exec(sid, ["true"])).exit_code == 0
        assert statuses and statuses[0].get("status") == "Success"
        if not on_kwok:  # a kubelet starts exec in the container's workingDir, the mounted volume
            assert (await b.exec(sid, ["pwd"])).stdout == b"/workspace\n"

        # files on the workspace volume
        await b.write_file(sid, "/workspace/dir/a.txt", b"\x00binary\xffdata\n")
        assert await b.read_file(sid, "dir/a.txt") == b"\x00binary\xffdata\n"
        assert [e.name for e in await b.list_dir(sid, "dir")] == ["a.txt"]
        with pytest.raises(NotFound):
            await b.read_file(sid, "missing.txt")

        # suspend: the pod goes, the PVC stays
        st = await b.suspend(sid)
        assert st.phase is SandboxPhase.SUSPENDED and not st.ready
        await until(lambda: _gone(apis.core.read_namespaced_pod, sid, ns), "the pod to go")
        assert not await _gone(apis.core.read_namespaced_persistent_volume_claim, objects.pvc_name(sid), ns)

        # resume: a new pod, Ready, with the workspace intact
        st = await b.resume(sid)
        assert st.ready and st.phase is SandboxPhase.RUNNING
        assert await b.read_file(sid, "dir/a.txt") == b"\x00binary\xffdata\n"
        assert (await b.exec(sid, ["sh", "-c", "exit 7"])).exit_code == 7

        # delete: the Sandbox and its PVC go, the record too
        await b.delete(sid)
        version = await b.version()
        await until(lambda: _gone(apis.custom.get_namespaced_custom_object, objects.GROUP, version, ns,
                                  objects.PLURAL, sid), "the Sandbox to go")
        await until(lambda: _gone(apis.core.read_namespaced_persistent_volume_claim, objects.pvc_name(sid), ns),
                    "the PVC to go")
        assert await store.get_sandbox(sid) is None
    finally:
        await b.close()
        await store.close()
