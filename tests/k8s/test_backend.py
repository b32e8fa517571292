"""The Kubernetes backend against the real API server and the real agent-sandbox controller
(bin/k8s-dev: kwok nodes, so exec runs on this host in the PVC's stand-in directory)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import SandboxError, SandboxPhase, SandboxSpec
from lap_tui.sandbox.base import SandboxGone
from lap_tui.sandbox.k8s import objects
from lap_tui.store import open_store
from tests.k8s.lap_backend import (AGENT_SECRET, SECRET, TEAM, backend, k8s_env, k8s_settings, kubectl_json,
                                   until)


@pytest.fixture
async def k8s(tmp_path: Path, k8s_cluster, k8s_namespace):
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)
    settings = k8s_settings(env, tmp_path)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    made = []

    def make(**kw):
        b = backend(store, settings, env, **kw)
        made.append(b)
        return b

    yield make, store, k8s_namespace
    for b in made:
        await b.close()
    await store.close()


# Exit 0 when the process whose pid is in file $1 is dead (a zombie waiting for the host's init counts).
DEAD = ["sh", "-c", 'p=$(cat "$1"); ! kill -0 "$p" 2>/dev/null || grep -q "^State:[[:space:]]*Z" "/proc/$p/status"',
        "dead"]


def _spec(sid: str, **settings) -> SandboxSpec:
    return SandboxSpec(id=sid, team=TEAM, settings=SandboxSettings(env=("AGENT_TOKEN",), **settings))


def _pod_exists(cluster, ns: str, name: str) -> bool:
    return cluster.kubectl("get", "pod", "-n", ns, name).returncode == 0


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
async def test_lifecycle(k8s, k8s_cluster, version, caplog):
    caplog.set_level(logging.DEBUG)
    make, store, ns = k8s
    b = make(sandbox_version=version)
    sid = f"s-life{version[1:]}"[:14]
    st = await b.ensure(_spec(sid))
    assert st.ready and st.phase is SandboxPhase.RUNNING and st.team == TEAM
    # It is a real Sandbox of that version, with our labels, and the pod is there.
    obj = kubectl_json(k8s_cluster, "get", f"sandboxes.{version}.agents.x-k8s.io", "-n", ns, sid)
    assert obj["metadata"]["labels"][objects.MANAGED_BY] == "lap-tui"
    assert (obj["spec"].get("replicas") == 1) if version == "v1alpha1" else obj["spec"]["operatingMode"] == "Running"
    assert _pod_exists(k8s_cluster, ns, sid)

    # exec: exit codes, both streams, streamed output
    seen = []
    r = await b.exec(sid, ["sh", "-c", "echo out; echo err >&2; exit 3"], on_output=lambda n, c: seen.append((n, c)))
    assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    assert ("stdout", b"out\n") in seen and ("stderr", b"err\n") in seen
    assert (await b.exec(sid, ["true"])).exit_code == 0
    assert (await b.exec(sid, ["sh", "-c", "no-such-command-here"])).exit_code == 127
    r = await b.exec(sid, ["sh", "-c", 'pwd; echo "$X"'], env={"X": "from-env"}, cwd="/workspace")
    assert r.stdout.endswith(b"\nfrom-env\n")
    r = await b.exec(sid, ["wc", "-c"], stdin=b"12345678")  # no EOF on kwok: read by length
    assert r.stdout.strip() == b"8"
    r = await b.exec(sid, ["sh", "-c", "yes | head -c 100000"], max_output=1000)
    assert r.stdout_truncated and len(r.stdout) < 2000

    # timeout kills the whole tree: a background child dies too
    r = await b.exec(sid, ["sh", "-c", "sleep 300 & echo $! > child.pid; sleep 300"], timeout=1.0)
    assert r.timed_out and r.killed == "timeout" and r.exit_code == 137
    assert (await b.exec(sid, DEAD + ["child.pid"])).exit_code == 0

    # cancel: the task is cancelled, the command killed
    task = asyncio.create_task(b.exec(sid, ["sh", "-c", "echo $$ > main.pid; sleep 300"]))
    await until(lambda: (k8s_cluster.volume_dir(ns, objects.pvc_name(sid)) / "main.pid").exists(), "the command")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await b.exec(sid, DEAD + ["main.pid"])).exit_code == 0

    # files
    await b.write_file(sid, "/workspace/dir/a.txt", b"\x00binary\xffdata\n")
    assert await b.read_file(sid, "dir/a.txt") == b"\x00binary\xffdata\n"
    await b.write_file(sid, "empty", b"")
    assert await b.read_file(sid, "/workspace/empty") == b""
    names = {e.name: e for e in await b.list_dir(sid, "/workspace")}
    assert names["dir"].kind == "dir" and names["empty"].kind == "file" and "child.pid" in names
    assert [e.name for e in await b.list_dir(sid, "dir")] == ["a.txt"]
    with pytest.raises(NotFound):
        await b.read_file(sid, "missing.txt")
    with pytest.raises(InvalidInput):
        await b.read_file(sid, "../../etc/passwd")
    with pytest.raises(InvalidInput):
        await b.read_file(sid, "dir/a.txt", max_bytes=3)
    await b.exec(sid, ["ln", "-s", "/etc/passwd", "link"])
    with pytest.raises(InvalidInput, match="outside"):
        await b.read_file(sid, "link")
    with pytest.raises(InvalidInput):
        await b.write_file(sid, "dir", b"x")
    for argv in ("echo hi", [], ["echo", "a\0b"]):  # sandbox.base.check_argv, as the local backend
        with pytest.raises(InvalidInput):
            await b.exec(sid, argv)

    # logs (kwok serves the pod's log file)
    k8s_cluster.append_log(ns, sid, "hello from the container")
    assert "hello from the container" in await b.logs(sid, tail=5)

    # suspend: the pod goes, the PVC and its files stay
    st = await b.suspend(sid)
    assert st.phase is SandboxPhase.SUSPENDED and not st.ready
    obj = kubectl_json(k8s_cluster, "get", f"sandboxes.{version}.agents.x-k8s.io", "-n", ns, sid)
    assert (obj["spec"]["replicas"] == 0) if version == "v1alpha1" else obj["spec"]["operatingMode"] == "Suspended"
    await until(lambda: not _pod_exists(k8s_cluster, ns, sid), "the pod to go")
    assert k8s_cluster.kubectl("get", "pvc", "-n", ns, objects.pvc_name(sid)).returncode == 0
    assert (await b.status(sid)).phase is SandboxPhase.SUSPENDED

    # resume: ready again, workspace intact
    st = await b.resume(sid)
    assert st.ready and st.phase is SandboxPhase.RUNNING
    assert await b.read_file(sid, "dir/a.txt") == b"\x00binary\xffdata\n"

    # exec on a suspended sandbox resumes it on use
    await b.suspend(sid)
    await until(lambda: not _pod_exists(k8s_cluster, ns, sid), "the pod to go")
    assert (await b.exec(sid, ["cat", "dir/a.txt"])).stdout == b"\x00binary\xffdata\n"

    # ensure() of a suspended one resumes it too
    await b.suspend(sid)
    assert (await b.ensure(_spec(sid))).ready

    # list and status come from the cluster
    assert sid in [s.id for s in await b.list()]  # the cluster may hold other tests' sandboxes too
    # No session uses it: an orphan. Once a session does, not.
    assert (await b.status(sid)).orphan
    agent = await store.create_agent(Agent(id=new_id(), name="bot", team=TEAM, model="m"))
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    await store.update_session(session.id, sandbox_ref=sid)
    assert not (await b.status(sid)).orphan

    # delete: the Sandbox and its PVC go, the record too
    await b.delete(sid)
    await until(lambda: k8s_cluster.kubectl("get", f"sandboxes.{version}.agents.x-k8s.io", "-n", ns, sid)
                .returncode != 0, "the Sandbox to go")
    await until(lambda: k8s_cluster.kubectl("get", "pvc", "-n", ns, objects.pvc_name(sid)).returncode != 0,
                "the PVC to go")
    assert await store.get_sandbox(sid) is None
    assert sid not in [s.id for s in await b.list()]
    # No secret value in anything logged along the way.
    assert SECRET not in caplog.text and AGENT_SECRET not in caplog.text


async def test_delete_can_keep_the_workspace(k8s, k8s_cluster):
    make, store, ns = k8s
    b = make()
    sid = "s-keepvolume1"
    await b.ensure(_spec(sid))
    await b.write_file(sid, "kept.txt", b"kept")
    await b.delete(sid, keep_volume=True)
    await until(lambda: k8s_cluster.kubectl("get", "sandbox", "-n", ns, sid).returncode != 0, "the Sandbox to go")
    assert k8s_cluster.kubectl("get", "pvc", "-n", ns, objects.pvc_name(sid)).returncode == 0


async def test_secrets_only_in_the_secret(k8s, k8s_cluster, tmp_path):
    make, store, ns = k8s
    b = make()
    sid = "s-secretstest"
    await b.ensure(_spec(sid))
    dump = k8s_cluster.kubectl("get", "sandboxes,pods,pvc", "-n", ns, "-o", "yaml", check=True).stdout
    assert SECRET not in dump and AGENT_SECRET not in dump
    assert f"{sid}-env" in dump  # the pod names the Secret (envFrom)...
    secret = kubectl_json(k8s_cluster, "get", "secret", "-n", ns, f"{sid}-env")
    assert set(secret["data"]) == {"KUBE_SECRET", "AGENT_TOKEN"}  # ... which holds the values
    for f in tmp_path.rglob("lap.db*"):
        assert SECRET.encode() not in f.read_bytes() and AGENT_SECRET.encode() not in f.read_bytes()


async def test_objects_are_sent_with_strict_field_validation(k8s, monkeypatch):
    """A field the CRD does not declare is refused by the server, not pruned: Strict is on."""
    make, store, ns = k8s
    b = make()
    real = objects.sandbox_object

    def with_typo(*a, **kw):
        body = real(*a, **kw)
        body["spec"]["podTemplate"]["spec"]["containers"][0]["workdir"] = "/workspace"
        return body

    monkeypatch.setattr(objects, "sandbox_object", with_typo)
    with pytest.raises(SandboxError, match="unknown field"):
        await b.ensure(_spec("s-stricttest1"))


async def test_pod_deleted_mid_command_is_gone_and_comes_back(k8s, k8s_cluster):
    make, store, ns = k8s
    b = make()
    sid = "s-poddeleted1"
    await b.ensure(_spec(sid))
    await b.write_file(sid, "before.txt", b"intact")
    vol = k8s_cluster.volume_dir(ns, objects.pvc_name(sid))
    task = asyncio.create_task(b.exec(sid, ["sh", "-c", "echo started >> runs; while [ ! -f release ]; do "
                                            "sleep 0.1; done"]))
    await until(lambda: (vol / "runs").exists(), "the command to start")
    k8s_cluster.kubectl("delete", "pod", "-n", ns, sid, "--wait=false", check=True)
    try:
        with pytest.raises(SandboxGone):
            await asyncio.wait_for(task, 60)
    finally:
        (vol / "release").touch()  # kwok's host process outlives its pod: let it end
    st = await b.ensure(_spec(sid))
    assert st.ready
    assert await b.read_file(sid, "before.txt") == b"intact"
    assert (await b.read_file(sid, "runs")) == b"started\n"


async def test_no_stale_row_write_brings_back_a_deleted_sandbox_or_undoes_a_suspend(k8s, k8s_cluster):
    """Another process deletes the row, or suspends the sandbox, between this backend's read of
    its row and its write: the write used to put the whole stale row back (put_sandbox)."""
    make, store, ns = k8s
    b = make()
    sid = "s-stalerows01"
    await b.ensure(_spec(sid))
    real_get = store.get_sandbox
    meddle: list = []

    async def get_then_meddle(sandbox_id: str):
        rec = await real_get(sandbox_id)
        while meddle:
            await meddle.pop()()  # the other process acts right after our read
        return rec

    store.get_sandbox = get_then_meddle  # type: ignore[method-assign]
    try:
        # last use recorded after another process suspended it: the row stays suspended
        rec = await real_get(sid)
        await store.update_sandbox(sid, phase_was=rec.phase, last_used_at="2000-01-01T00:00:00.000000Z")
        meddle.append(lambda: store.update_sandbox(sid, phase_was=rec.phase, phase=SandboxPhase.SUSPENDED.value, ready=False))
        await b._touch(sid)
        after = await real_get(sid)
        assert after is not None and after.phase == SandboxPhase.SUSPENDED.value, after
        # last use recorded after another process deleted the row: it stays deleted
        await store.update_sandbox(sid, phase_was=SandboxPhase.SUSPENDED.value, last_used_at="2000-01-01T00:00:00.000000Z")
        meddle.append(lambda: store.delete_sandbox(sid))
        await b._touch(sid)
        assert await real_get(sid) is None
    finally:
        store.get_sandbox = real_get  # type: ignore[method-assign]
        await b.delete(sid)
