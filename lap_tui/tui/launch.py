"""`lap-tui` with no subcommand: settings, services, the App. Kept light for a fast first paint.

Only Textual and the config load before the first frame. The embedded (SQLite) store opens and
the agents are read before Textual is imported, on the loop the app then runs on, so the first
frame already holds the agents list; another store opens in the app's first worker. The engine,
gateway and sandbox backend (httpx, kubernetes, asyncpg) load after the first screen is drawn.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from lap_tui.config import Settings, announce_private_paths, load_settings
from lap_tui.store.base import Store
from lap_tui.tui import collector
from lap_tui.tui.loop import import_in_thread

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits for it


def build_services(settings: Settings):
    from lap_tui.tui.services import Services
    from lap_tui.tui.state import state_path

    async def open_store() -> Store:
        from lap_tui.store import open_store as _open

        return await _open(settings.database_url, create_dir=settings.may_create_database_dir)

    async def make_engine(store: Store) -> Any:
        return (await import_in_thread("lap_tui.engine.services")).build_engine(settings, store)

    async def make_sandboxes(store: Store) -> Any:
        return (await import_in_thread("lap_tui.sandbox")).backend_for(settings, store)

    gateway: list[Any] = []

    async def list_models() -> list[str]:
        if not gateway:  # made in a thread too: the HTTP client loads the CA bundle (tens of ms)
            client = (await import_in_thread("lap_tui.gateway")).GatewayClient
            gateway.append(await asyncio.to_thread(client.from_settings, settings))
        return await gateway[0].list_models()

    return Services(settings=settings, open_store=open_store, make_engine=make_engine,
                    make_sandboxes=make_sandboxes, list_models=list_models,
                    state_path=state_path(settings.state_dir))


async def _preopen(services: Any, session: str | None) -> None:
    """Open the embedded store and read the agents (and with `--session ID` that session's last
    page of events) before Textual loads: alone on the loop this takes a few milliseconds, where
    inside the app's start-up every thread hop of aiosqlite waits behind the first screen's
    composition. Failures are left to the app, which shows them."""
    try:
        store = await services.open_store()
    except Exception:  # noqa: BLE001 - the app opens it again and shows the error
        return
    try:
        services.agents = await store.list_agents()
    except Exception:  # noqa: BLE001
        await store.close()
        return
    services.store = store
    if session:
        from lap_tui.tui.history import last_page

        try:
            found = await store.get_session(session)
            services.first_chat = (found, *await last_page(store, found.id, None))
        except Exception:  # noqa: BLE001 - the chat reads it again and shows the error
            services.first_chat = None


def _save_on_hangup(loop: asyncio.AbstractEventLoop, app: Any) -> None:
    """Closing the terminal (SIGHUP) or a `kill` (SIGTERM) saves the UI state, then quits: it is
    otherwise written at most once a second, and a step taken just before was lost."""
    def stop(sig: int) -> None:
        app.save_state()
        app.exit(return_code=128 + sig)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
            pass


def _say_handed_back(app: Any) -> None:
    """A turn running when the app quit was handed back at its last checkpoint (Engine.close):
    say so once the screen is gone, so quitting mid-turn never looks like losing it."""
    n = len(getattr(getattr(app, "engine", None), "handed_back", ()) or ())
    if n:
        print(f"lap-tui: {n} running turn(s) stopped at their last checkpoint; they resume when "
              "their session is opened again (or by `lap-tui worker`)", file=sys.stderr)


def launch(view: str | None = None, session: str | None = None, read_only: bool = False) -> int:
    settings = load_settings()
    announce_private_paths(settings)
    services = build_services(settings)
    # Textual reads keys and writes frames in threads of their own, which wait for the GIL while
    # the event loop is busy (a reply streaming in): with Python's 5 ms switch interval a key took
    # up to 30 ms to reach the loop, with 0.5 ms about 1 ms (measured; docs/TUI.md).
    sys.setswitchinterval(SWITCH_INTERVAL)
    collector.hold()  # no collection on the way to the first paint (collector.py)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        if settings.database_url.startswith("sqlite:"):
            loop.run_until_complete(_preopen(services, session))
        from lap_tui.tui.app import LapApp

        app = LapApp(services, view=view, session=session, read_only=read_only)
        loop.call_later(collector.START_LIMIT, app.collector.resume)
        _save_on_hangup(loop, app)
        app.run(loop=loop)
        app.save_state()
        _say_handed_back(app)
        return app.return_code or 0
    finally:
        loop.close()
