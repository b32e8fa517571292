"""A watch the API server refuses (401/403) while waiting for a sandbox fails at once with the
reason, instead of retrying until the ready timeout (minutes) and then saying 'not ready'."""

from __future__ import annotations

import asyncio
import time

import pytest

from lap_tui.config import load_settings
from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox.k8s import backend as kb
from lap_tui.sandbox.k8s.watching import ApiError

BASE = {"HOME": "/nonexistent", "XDG_DATA_HOME": "/tmp/x", "XDG_CONFIG_HOME": "/tmp/x", "XDG_STATE_HOME": "/tmp/x",
        "LAP_KUBE_CONTEXT": "kind-x"}


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_wait_fails_at_once(monkeypatch, status: int) -> None:
    calls = []

    async def refused(call, **kw):
        calls.append(kw)
        raise ApiError(status, '{"reason":"Forbidden","message":"sandboxes is forbidden"}')
        yield  # an async generator, as watch_raw is

    monkeypatch.setattr(kb, "watch_raw", refused)
    b = kb.KubernetesBackend(None, load_settings(environ=BASE), environ=BASE)  # type: ignore[arg-type]
    start = time.monotonic()
    with pytest.raises(SandboxError, match="refused") as err:
        await asyncio.wait_for(b.wait_for(object(), "s-x", lambda o: True, time.monotonic() + 300, "its pod"),
                               timeout=30)
    assert "forbidden" in str(err.value) and time.monotonic() - start < 30 and len(calls) == 1


async def test_a_transient_error_is_still_retried(monkeypatch) -> None:
    calls = []

    async def flaky(call, **kw):
        calls.append(kw)
        if len(calls) == 1:
            raise ApiError(500, "etcd leader changed")
        yield {"type": "ADDED", "object": {"metadata": {"name": "s-x"}}}

    monkeypatch.setattr(kb, "watch_raw", flaky)
    b = kb.KubernetesBackend(None, load_settings(environ=BASE), environ=BASE)  # type: ignore[arg-type]
    obj = await asyncio.wait_for(b.wait_for(object(), "s-x", lambda o: True, time.monotonic() + 300, "its pod"),
                                 timeout=30)
    assert obj["metadata"]["name"] == "s-x" and len(calls) == 2
