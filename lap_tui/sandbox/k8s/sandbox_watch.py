"""The Kubernetes backend's watch(): lap-tui's Sandboxes, its warm pools' waiting and claimed ones,
and their pods, merged into the SandboxEvents the Sandboxes view shows.

Three reflectors per scope (all namespaces, or each team's): Sandboxes with lap-tui's labels,
Sandboxes a pool or claim made (the controller's launch-type label; only those made from
lap-tui's templates are kept, warm.is_ours), and pods with lap-tui's labels (a pool's pods have
them from the template). A claimed Sandbox is in both Sandbox tables once lap-tui has labelled it;
the newer copy wins. Per change the work is one object's status, never a pass over the table.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from lap_tui.domain.sandbox import SandboxEvent, SandboxStatus
from lap_tui.sandbox.k8s import warm
from lap_tui.sandbox.k8s.ops import SandboxOps
from lap_tui.sandbox.k8s.watching import reflect

Key = tuple[str, str]


def key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def visible(s: SandboxStatus) -> tuple:
    """What the view shows of a status: a change elsewhere (an annotation) is no event."""
    return (s.phase, s.ready, s.message, s.restarts, s.orphan, s.node, s.pod_phase, s.team, s.agent_id,
            s.session_id, s.origin, s.pool, s.claim)


def _pick(obj: Any, shape: dict[str, Any]) -> Any:
    """The parts of `obj` named in `shape` (a dict of keys: True keeps the value whole)."""
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, sub in shape.items():
        v = obj.get(k)
        if v is not None:
            out[k] = v if sub is True else _pick(v, sub)
    return out


# What status_of (objects.status_from, warm.origin) and newer() read; the rest (managedFields, the
# pod spec, volumes...) is dropped as each object arrives. 1,000 whole Sandboxes and their pods
# were most of the app's heap, walked by every full garbage collection, and kept in the old
# generation by each change (a watch event is a new decoded copy).
_META = {"name": True, "namespace": True, "labels": True, "annotations": True, "creationTimestamp": True,
         "deletionTimestamp": True, "ownerReferences": True, "resourceVersion": True, "uid": True}
SANDBOX_SHAPE = {"metadata": _META,
                 "spec": {"operatingMode": True, "replicas": True, "podTemplate": {"metadata": {"labels": True}}},
                 "status": {"conditions": True}}
POD_SHAPE = {"metadata": _META, "spec": {"nodeName": True},
             "status": {"phase": True, "conditions": True, "containerStatuses": True}}


def slim(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return _pick(obj, POD_SHAPE if kind == "pod" else SANDBOX_SHAPE)


def newer(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Of two copies of one object from two watches, the later (resourceVersions are etcd's counter)."""
    if a is None or b is None:
        return a if b is None else b
    try:
        return a if int(a["metadata"]["resourceVersion"]) >= int(b["metadata"]["resourceVersion"]) else b
    except (KeyError, TypeError, ValueError):
        return a


async def watch(backend: SandboxOps) -> AsyncIterator[SandboxEvent]:
    apis = await backend.apis()
    version = await backend.version()
    queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
    tasks = []
    for ns in await backend.scopes():
        call, kw = backend.sandbox_calls(apis, version, ns)
        for kind, (call_, kw_) in (("sandbox", (call, kw)),
                                   ("warm", (call, dict(kw, label_selector=warm.LAUNCH_SELECTOR))),
                                   ("pod", backend.pod_calls(apis, ns))):
            tag = f"{kind}:{ns or '*'}"

            async def on_sync(items: list[dict[str, Any]], tag: str = tag) -> None:
                queue.put_nowait(("sync", tag, items))

            async def on_event(kind_: str, obj: dict[str, Any], tag: str = tag) -> None:
                queue.put_nowait((kind_, tag, obj))

            tasks.append(asyncio.create_task(reflect(call_, call_, on_sync=on_sync, on_event=on_event, what=tag,
                                                     **kw_)))
    tables: dict[str, dict[Key, dict[str, Any]]] = {"sandbox": {}, "warm": {}, "pod": {}}
    sandboxes, pooled, pods = tables["sandbox"], tables["warm"], tables["pod"]
    shown: dict[Key, SandboxStatus] = {}
    try:
        while True:
            what, tag, payload = await queue.get()
            kind, scope = tag.split(":", 1)
            table = tables[kind]
            touched: set[Key] = set()
            if what == "sync":
                items = payload if kind != "warm" else [o for o in payload if warm.is_ours(o)]
                fresh = {key(o): slim(kind, o) for o in items}
                for k in [k for k in table if (scope == "*" or k[0] == scope) and k not in fresh]:
                    del table[k]
                    touched.add(k)
                table.update(fresh)
                touched.update(fresh)
            else:
                k = key(payload)
                touched.add(k)
                if what == "DELETED" or (kind == "warm" and not warm.is_ours(payload)):
                    table.pop(k, None)
                else:
                    table[k] = slim(kind, payload)
            known = await backend.known() if touched - shown.keys() else None
            for k in sorted(touched):
                obj = newer(sandboxes.get(k), pooled.get(k))
                if obj is None:
                    old = shown.pop(k, None)
                    if old is not None:
                        yield SandboxEvent("deleted", old)
                    continue
                backend.namespaces[k[1]] = k[0]
                old = shown.get(k)
                orphan = old.orphan if old is not None else await backend.is_orphan(obj, known)
                st = warm.status_of(obj, pods.get(k), orphan=orphan)
                if old is None:
                    shown[k] = st
                    yield SandboxEvent("added", st)
                elif visible(old) != visible(st):
                    shown[k] = st
                    yield SandboxEvent("modified", st)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
