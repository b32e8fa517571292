"""List-then-watch loops (a small reflector) over raw API calls, objects kept as dicts.

A watch starts from the list's resourceVersion, asks for bookmarks (so a reconnect resumes
from a recent version instead of replaying or failing), re-lists on 410 Gone (the version
was compacted away), and backs off exponentially on errors. It never polls: between
changes it waits on the open watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any, AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

WATCH_SECONDS = 240  # the server ends each watch after this; it is resumed from the last version
BACKOFF_START, BACKOFF_MAX = 0.2, 5.0  # capped low: the view should recover within seconds of the API


class Gone(Exception):
    """410: the resourceVersion asked for is older than what etcd keeps."""


RawCall = Callable[..., Awaitable[Any]]  # an API call `*_without_preload_content`, arguments bound but these


def bind(fn: Any, *args: Any) -> RawCall:
    """`fn` with its positional arguments bound: the RawCall that list_raw, watch_raw and reflect take."""
    async def call(**kw: Any) -> Any:
        return await fn(*args, **kw)
    return call


async def list_raw(call: RawCall, **kw: Any) -> dict[str, Any]:
    resp = await call(**kw)
    try:
        if resp.status >= 400:
            raise _api_error(resp.status, await resp.text())
        return await resp.json(content_type=None)
    finally:
        resp.release()


async def watch_raw(call: RawCall, *, resource_version: str | None, timeout: float = WATCH_SECONDS,
                    bookmarks: bool = True, **kw: Any) -> AsyncIterator[dict[str, Any]]:
    """Events (type, object) of one watch request until the server ends it; Gone on 410."""
    args: dict[str, Any] = dict(kw, watch=True, timeout_seconds=int(timeout), _request_timeout=timeout + 30)
    if bookmarks:
        args["allow_watch_bookmarks"] = True
    if resource_version:
        args["resource_version"] = resource_version
    resp = await call(**args)
    try:
        if resp.status == 410:
            raise Gone()
        if resp.status >= 400:
            raise _api_error(resp.status, await resp.text())
        buf = b""
        while True:
            chunk = await resp.content.readany()  # lines split here: an object may exceed readline's limit
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                ev = json.loads(line)
                if ev.get("type") == "ERROR":
                    obj = ev.get("object") or {}
                    if obj.get("code") == 410:
                        raise Gone()
                    raise _api_error(int(obj.get("code") or 500), json.dumps(obj))
                yield ev
    finally:
        resp.release()


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:300]}")
        self.status = status


def _api_error(status: int, body: str) -> ApiError:
    return ApiError(status, body)


Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
Sync = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def reflect(list_call: RawCall, watch_call: RawCall, *, on_sync: Sync, on_event: Emit, what: str,
                  ready: asyncio.Event | None = None, **kw: Any) -> None:
    """Keep `on_sync`/`on_event` told of every object of one list, forever (cancel to stop)."""
    rv: str | None = None
    backoff = BACKOFF_START
    while True:
        try:
            if rv is None:
                listing = await list_raw(list_call, **kw)
                rv = (listing.get("metadata") or {}).get("resourceVersion")
                await on_sync(listing.get("items") or [])
                if ready is not None:
                    ready.set()
            async for ev in watch_raw(watch_call, resource_version=rv, **kw):
                obj = ev.get("object") or {}
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                backoff = BACKOFF_START  # the server answered: errors from here start afresh
                if ev.get("type") != "BOOKMARK":
                    await on_event(str(ev.get("type")), obj)
        except asyncio.CancelledError:
            raise
        except Gone:
            log.info("watch of %s: resourceVersion %s expired (410), listing again", what, rv)
            rv = None
        except Exception as exc:  # noqa: BLE001 - any failure: the API restarting, a network error
            log.warning("watch of %s failed (%s); retrying in %.1f s", what, exc or type(exc).__name__, backoff)
            await asyncio.sleep(backoff * (0.75 + random.random() / 2))
            backoff = min(backoff * 2, BACKOFF_MAX)
