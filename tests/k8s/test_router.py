"""Offline: the router sends each call to the right backend (the agent's setting for ensure, the
store record for the rest; a sandbox with no record to the backend whose list has it, else the
default) and merges lists."""

from __future__ import annotations

from pathlib import Path

from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxPhase, SandboxSpec, SandboxStatus
from lap_tui.sandbox.base import SandboxBackend
from lap_tui.sandbox.router import Backends
from lap_tui.store import open_store
from lap_tui.store.base import SandboxRecord


class Fake(SandboxBackend):
    def __init__(self, name: str, store) -> None:
        self.name, self.store, self.calls = name, store, []

    def _st(self, sid: str) -> SandboxStatus:
        return SandboxStatus(id=sid, backend=self.name, team="t", phase=SandboxPhase.RUNNING, ready=True)

    async def ensure(self, spec):
        self.calls.append(("ensure", spec.id))
        await self.store.put_sandbox(SandboxRecord(id=spec.id, backend=self.name, team="t", phase="Running"))
        return self._st(spec.id)

    async def exec(self, sandbox_id, argv, **kw):
        self.calls.append(("exec", sandbox_id))

    async def delete(self, sandbox_id, **kw):
        self.calls.append(("delete", sandbox_id, kw))

    async def list(self):
        return [self._st(r.id) for r in await self.store.list_sandboxes(backend=self.name)]

    async def shell(self, *a, **k): ...
    async def read_file(self, *a, **k): ...
    async def write_file(self, *a, **k): ...
    async def list_dir(self, *a, **k): ...
    async def logs(self, *a, **k): ...
    async def suspend(self, *a, **k): ...
    async def resume(self, *a, **k): ...
    async def status(self, *a, **k): ...
    async def suspend_idle(self, **k): return []

    async def watch(self, **k):  # pragma: no cover - not used here
        if False:
            yield


async def test_router_routes_by_agent_setting_and_record(tmp_path: Path) -> None:
    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    made: dict[str, Fake] = {}

    def make(kind: str) -> Fake:
        made[kind] = Fake(kind, store)
        return made[kind]

    r = Backends(store, "kubernetes", make)
    try:
        await r.ensure(SandboxSpec(id="s-aaaaaaaaaaaa", team="t", settings=SandboxSettings(backend="local")))
        await r.ensure(SandboxSpec(id="s-bbbbbbbbbbbb", team="t", settings=SandboxSettings(backend="auto")))
        assert made["local"].calls == [("ensure", "s-aaaaaaaaaaaa")]
        assert made["kubernetes"].calls == [("ensure", "s-bbbbbbbbbbbb")]
        await r.exec("s-aaaaaaaaaaaa", ["true"])
        await r.exec("s-bbbbbbbbbbbb", ["true"])
        await r.exec("s-orphan", ["true"])  # no record: the default backend's (a cluster orphan)
        assert made["local"].calls[-1] == ("exec", "s-aaaaaaaaaaaa")
        assert made["kubernetes"].calls[-2:] == [("exec", "s-bbbbbbbbbbbb"), ("exec", "s-orphan")]
        await r.delete("s-bbbbbbbbbbbb", keep_volume=True)
        await r.delete("s-aaaaaaaaaaaa", keep_volume=True)  # the local backend takes no such option
        assert made["kubernetes"].calls[-1] == ("delete", "s-bbbbbbbbbbbb", {"keep_volume": True})
        assert made["local"].calls[-1] == ("delete", "s-aaaaaaaaaaaa", {})
        assert [(s.id, s.backend) for s in await r.list()] == [("s-aaaaaaaaaaaa", "local"),
                                                               ("s-bbbbbbbbbbbb", "kubernetes")]
    finally:
        await store.close()


async def test_an_agent_asking_for_kubernetes_without_a_cluster_is_told_so(tmp_path: Path) -> None:
    import pytest

    from lap_tui.domain.agent import Agent
    from lap_tui.domain.errors import ConfigError
    from lap_tui.domain.ids import new_id
    from lap_tui.domain.session import Session
    from lap_tui.sandbox import ensure_for_session

    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="k", team="t", model="m",
                                               sandbox=SandboxSettings(backend="kubernetes")))
        session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        local = Fake("local", store)
        with pytest.raises(ConfigError, match="wants kubernetes sandboxes"):
            await ensure_for_session(local, store, agent, session)
        assert local.calls == []  # never silently made a local sandbox instead
        router = Backends(store, "kubernetes", lambda k: Fake(k, store))
        assert (await ensure_for_session(router, store, agent, session)).backend == "kubernetes"
    finally:
        await store.close()


async def test_lists_include_the_backend_an_agent_chose_before_it_has_any_sandbox(tmp_path: Path) -> None:
    """A warm pool's sandboxes are in the cluster before any session of the agent has a record:
    with local as the default, the agent's kubernetes backend is listed and watched all the same."""
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.ids import new_id

    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")
    made: dict[str, Fake] = {}

    class Pool(Fake):
        async def list(self):
            return [self._st("lw-pool-abcde")] if self.name == "kubernetes" else []

    def make(kind: str) -> Fake:
        made[kind] = Pool(kind, store)
        return made[kind]

    try:
        r = Backends(store, "local", make)
        assert [s.id for s in await r.list()] == []  # no agent on the cluster: never built
        assert "kubernetes" not in made
        await store.create_agent(Agent(id=new_id(), name="pooled", team="t", model="m",
                                       sandbox=SandboxSettings(backend="kubernetes", warm_pool=1)))
        assert [(s.id, s.backend) for s in await r.list()] == [("lw-pool-abcde", "kubernetes")]
        # No record, but in the kubernetes backend's list: calls go there, not to the default.
        await r.delete("lw-pool-abcde", keep_volume=True)
        assert made["kubernetes"].calls[-1] == ("delete", "lw-pool-abcde", {"keep_volume": True})
        await r.exec("s-nowhere0000", ["true"])  # in no list: the default, as before
        assert made["local"].calls[-1] == ("exec", "s-nowhere0000")
    finally:
        await store.close()
