"""watch(): from list+watch on Sandboxes and Pods; survives the API server restarting and a
410 Gone after etcd compaction, without losing a status change."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.domain.sandbox import SandboxPhase, SandboxSpec
from lap_tui.store import open_store
from tests.k8s.lap_backend import TEAM, backend, k8s_env, k8s_settings, until


@pytest.fixture
async def k8s(tmp_path: Path, k8s_cluster, k8s_namespace):
    env = k8s_env(tmp_path, k8s_cluster, k8s_namespace)
    settings = k8s_settings(env, tmp_path)
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    b = backend(store, settings, env)
    yield b, store, k8s_namespace
    await b.close()
    await store.close()


class Seen:
    """Collects watch() events; `wait_for` waits on the next events (no polling)."""

    def __init__(self) -> None:
        self.events: list = []
        self.changed = asyncio.Condition()

    async def run(self, b) -> None:
        async for ev in b.watch():
            async with self.changed:
                self.events.append(ev)
                self.changed.notify_all()

    async def wait_for(self, pred, what: str, timeout: float = 90.0, since: int = 0):
        async def wait():
            async with self.changed:
                await self.changed.wait_for(lambda: any(pred(e) for e in self.events[since:]))
        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"watch never showed {what}; saw {[(e.type, e.status.id, e.status.phase.value, e.status.ready) for e in self.events]}") from None


def _spec(sid: str) -> SandboxSpec:
    return SandboxSpec(id=sid, team=TEAM, settings=SandboxSettings())


async def test_watch_follows_changes_across_restart_and_410(k8s, k8s_cluster, caplog):
    caplog.set_level(logging.INFO, logger="lap_tui.sandbox.k8s")
    b, store, ns = k8s
    await b.ensure(_spec("s-watchone001"))
    seen = Seen()
    task = asyncio.create_task(seen.run(b))
    try:
        await seen.wait_for(lambda e: e.type == "added" and e.status.id == "s-watchone001" and e.status.ready,
                            "the existing sandbox, ready")
        # A change made by someone else (kubectl), seen from the watch.
        k8s_cluster.kubectl("patch", "sandbox", "-n", ns, "s-watchone001", "--type=merge",
                            "-p", '{"spec":{"operatingMode":"Suspended"}}', check=True)
        await seen.wait_for(lambda e: e.status.id == "s-watchone001" and e.status.phase is SandboxPhase.SUSPENDED,
                            "the suspension")

        # The API server restarts: open watches break and are resumed.
        await asyncio.to_thread(k8s_cluster.restart_apiserver)
        await b.ensure(_spec("s-watchtwo002"))
        await seen.wait_for(lambda e: e.type == "added" and e.status.id == "s-watchtwo002", "a sandbox made after")

        # Compact etcd and restart: the last resourceVersion is gone (410); the watch lists again.
        # A change made while the API server is down cannot happen; the one right after it must show.
        # An unrelated change moves etcd past the watch's last version, so the compaction removes it.
        k8s_cluster.kubectl("create", "configmap", "-n", ns, "bump", check=True)
        await asyncio.to_thread(k8s_cluster.compact_etcd)
        await asyncio.to_thread(k8s_cluster.restart_apiserver)
        mark = len(seen.events)
        k8s_cluster.kubectl("patch", "sandbox", "-n", ns, "s-watchone001", "--type=merge",
                            "-p", '{"spec":{"operatingMode":"Running"}}', check=True)
        await seen.wait_for(lambda e: e.status.id == "s-watchone001" and e.status.ready,
                            "the resumption after the 410", since=mark)
        k8s_cluster.kubectl("delete", "sandbox", "-n", ns, "s-watchtwo002", check=True)
        await seen.wait_for(lambda e: e.type == "deleted" and e.status.id == "s-watchtwo002", "the deletion")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "410" in caplog.text or "expired" in caplog.text, "the 410 path was not exercised"


async def test_orphans_are_flagged_and_deletable(k8s, k8s_cluster):
    b, store, ns = k8s
    await b.ensure(_spec("s-orphan00001"))
    agent = await store.create_agent(Agent(id=new_id(), name="bot", team=TEAM, model="m"))
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    await store.update_session(session.id, sandbox_ref="s-orphan00001")
    assert not (await b.status("s-orphan00001")).orphan
    await store.delete_sandbox("s-orphan00001")  # the store forgot it: only the cluster has it
    b.namespaces.clear()
    listed = {s.id: s for s in await b.list()}
    assert listed["s-orphan00001"].orphan and "ORPHAN" in listed["s-orphan00001"].warning
    await b.delete("s-orphan00001")
    # The API server removes the object once its finalizers and dependents are done: wait for it.
    await until(lambda: k8s_cluster.kubectl("get", "sandbox", "-n", ns, "s-orphan00001").returncode != 0,
                "the orphan's Sandbox to go")
