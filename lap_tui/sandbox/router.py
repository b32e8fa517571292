"""One backend over several: each agent picks its own (`sandbox.backend`), the config the default.

An existing sandbox is found by its store record, which names its backend; one without a
record (an orphan in the cluster) belongs to the default. Lists and watches merge every
backend in use: the default, those of the store's records and those the agents chose. Backends are built on first use, so a local-only session never loads the
Kubernetes client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Sequence

from lap_tui.domain.sandbox import DirEntry, ExecResult, SandboxEvent, SandboxSpec, SandboxStatus
from lap_tui.sandbox.base import DEFAULT_TIMEOUT, OutputCallback, SandboxBackend

if TYPE_CHECKING:
    from lap_tui.store.base import Store


class Backends(SandboxBackend):
    def __init__(self, store: Store, default: str, make: Callable[[str], SandboxBackend]) -> None:
        self.store = store
        self.name = default
        self._make = make
        self._made: dict[str, SandboxBackend] = {}

    def backend(self, kind: str) -> SandboxBackend:
        if kind == "auto":
            kind = self.name
        b = self._made.get(kind)
        if b is None:
            b = self._made[kind] = self._make(kind)
        return b

    async def for_id(self, sandbox_id: str) -> SandboxBackend:
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is not None:
            return self.backend(rec.backend)
        # No record (a warm pool's waiting sandbox, an orphan, another lap-tui's): the backend
        # whose list has it, else the default. Only here are the backends listed.
        kinds = await self._kinds()
        if len(kinds) > 1:
            for kind in kinds:
                if any(s.id == sandbox_id for s in await self.backend(kind).list()):
                    return self.backend(kind)
        return self.backend(self.name)

    async def _kinds(self) -> list[str]:
        kinds = {self.name, *self._made}
        kinds.update(r.backend for r in await self.store.list_sandboxes())
        # An agent's own choice too: a warm pool's waiting sandboxes exist in the cluster before
        # any session of the agent has a record, and lists and watches must show them.
        kinds.update(a.sandbox.backend for a in await self.store.list_agents())
        return sorted(k for k in kinds if k in ("local", "kubernetes"))

    async def ensure(self, spec: SandboxSpec) -> SandboxStatus:
        return await self.backend(spec.settings.backend).ensure(spec)

    async def exec(self, sandbox_id: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                   on_output: OutputCallback | None = None, max_output: int | None = None) -> ExecResult:
        return await (await self.for_id(sandbox_id)).exec(sandbox_id, argv, env=env, cwd=cwd, timeout=timeout,
                                                          stdin=stdin, on_output=on_output, max_output=max_output)

    async def shell(self, sandbox_id: str, argv: Sequence[str] | None = None) -> int:
        return await (await self.for_id(sandbox_id)).shell(sandbox_id, argv)

    async def read_file(self, sandbox_id: str, path: str, *, max_bytes: int | None = None) -> bytes:
        return await (await self.for_id(sandbox_id)).read_file(sandbox_id, path, max_bytes=max_bytes)

    async def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> None:
        await (await self.for_id(sandbox_id)).write_file(sandbox_id, path, data, mode=mode)

    async def list_dir(self, sandbox_id: str, path: str = ".") -> list[DirEntry]:
        return await (await self.for_id(sandbox_id)).list_dir(sandbox_id, path)

    async def logs(self, sandbox_id: str, *, tail: int | None = None) -> list[str]:
        return await (await self.for_id(sandbox_id)).logs(sandbox_id, tail=tail)

    async def describe(self, sandbox_id: str) -> dict[str, list[str]]:
        """The detail screen's `d`: conditions and Events on the cluster; nothing more locally."""
        b = await self.for_id(sandbox_id)
        if b.name != "kubernetes":
            return {}
        from lap_tui.sandbox.k8s.describe import describe

        return await describe(b, sandbox_id)  # type: ignore[arg-type]

    async def follow_logs(self, sandbox_id: str, *, tail: int | None = 10) -> AsyncIterator[str]:
        """The log as it grows where the backend can follow it (pods/log); NotImplementedError elsewhere."""
        b = await self.for_id(sandbox_id)
        follow = getattr(b, "follow_logs", None)
        if follow is None:
            raise NotImplementedError(f"the {b.name} backend cannot follow a log")
        async for line in follow(sandbox_id, tail=tail):
            yield line

    async def suspend(self, sandbox_id: str) -> SandboxStatus:
        return await (await self.for_id(sandbox_id)).suspend(sandbox_id)

    async def resume(self, sandbox_id: str) -> SandboxStatus:
        return await (await self.for_id(sandbox_id)).resume(sandbox_id)

    async def delete(self, sandbox_id: str, **kw: Any) -> None:
        b = await self.for_id(sandbox_id)
        await (b.delete(sandbox_id, **kw) if b.name == "kubernetes" else b.delete(sandbox_id))

    async def status(self, sandbox_id: str) -> SandboxStatus:
        return await (await self.for_id(sandbox_id)).status(sandbox_id)

    async def list(self) -> list[SandboxStatus]:
        out: list[SandboxStatus] = []
        for kind in await self._kinds():
            out += await self.backend(kind).list()
        return sorted(out, key=lambda s: s.id)

    async def watch(self, *, poll_interval: float = 1.0) -> AsyncIterator[SandboxEvent]:
        queue: asyncio.Queue[SandboxEvent | BaseException] = asyncio.Queue()

        async def pump(b: SandboxBackend) -> None:
            try:
                async for ev in b.watch(poll_interval=poll_interval):
                    queue.put_nowait(ev)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                queue.put_nowait(exc)

        tasks = [asyncio.create_task(pump(self.backend(k))) for k in await self._kinds()]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def suspend_idle(self, *, now: float | None = None) -> list[str]:
        done: list[str] = []
        for kind in await self._kinds():
            done += await self.backend(kind).suspend_idle(now=now)
        return done

    async def close(self) -> None:
        for b in self._made.values():
            await b.close()
