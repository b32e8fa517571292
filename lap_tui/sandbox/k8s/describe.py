"""`d` (describe) for a cluster sandbox: the Sandbox's conditions and the Events of it and its pod.

Plain lines of text (what `kubectl describe` would say, shortened), newest event last. Every
value comes from the cluster and is shown by the app through its sanitiser, never as markup.
"""

from __future__ import annotations

from typing import Any

from lap_tui.sandbox.k8s.ops import SandboxOps

MAX_EVENTS = 30


def condition_lines(obj: dict[str, Any] | None) -> list[str]:
    if obj is None:
        return ["(no Sandbox object)"]
    out = []
    for c in (obj.get("status") or {}).get("conditions") or ():
        msg = f" — {c.get('message')}" if c.get("message") else ""
        out.append(f"{c.get('type', '?')}={c.get('status', '?')} {c.get('reason') or ''}{msg}".strip())
    return out or ["(none yet)"]


def event_lines(items: list[dict[str, Any]]) -> list[str]:
    def when(e: dict[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp")
                   or "")

    out = []
    for e in sorted(items, key=when)[-MAX_EVENTS:]:
        kind = (e.get("involvedObject") or {}).get("kind", "")
        count = f" (x{e['count']})" if (e.get("count") or 1) > 1 else ""
        out.append(f"{when(e)[11:19]} {e.get('type', '')} {kind} {e.get('reason', '')}: {e.get('message', '')}{count}"
                   .strip())
    return out or ["(none)"]


async def describe(backend: SandboxOps, sandbox_id: str) -> dict[str, list[str]]:
    """{"conditions": [...], "events": [...], "pod": [...]}: what the detail screen shows."""
    ns = await backend.locate(sandbox_id)
    apis = await backend.apis()
    obj = await backend.get(ns, sandbox_id)
    pod = await backend.get_pod(ns, sandbox_id)
    pod_lines = ["(no pod: suspended or not created yet)"]
    if pod is not None:
        st = pod.get("status") or {}
        pod_lines = [f"phase {st.get('phase', '?')} on {(pod.get('spec') or {}).get('nodeName') or '(unscheduled)'}",
                     *(f"{c.get('type')}={c.get('status')}" for c in st.get("conditions") or ())]
    try:
        resp = await apis.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={sandbox_id}")
        items = [apis.api.sanitize_for_serialization(e) for e in resp.items or ()]
        events = event_lines(items)
    except apis.client.ApiException as exc:
        events = [f"(events not readable: {exc.status} {exc.reason}; the Role needs list on events)"]
    return {"conditions": condition_lines(obj), "pod": pod_lines, "events": events,
            "namespace": [ns]}
