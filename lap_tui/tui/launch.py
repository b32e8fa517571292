"""`lap-tui` with no subcommand: settings, services, the App. Kept light for a fast first paint.

Only Textual and the config load before the first frame; the store opens in the app's first
worker and the engine, gateway and sandbox backend (httpx, kubernetes, asyncpg) after the
agents list is on screen.
"""

from __future__ import annotations

from typing import Any

from lap_tui.config import Settings, load_settings
from lap_tui.store.base import Store


def build_services(settings: Settings):
    from lap_tui.tui.services import Services
    from lap_tui.tui.state import state_path

    async def open_store() -> Store:
        from lap_tui.store import open_store as _open

        return await _open(settings.database_url)

    async def make_engine(store: Store) -> Any:
        from lap_tui.engine.services import build_engine

        return build_engine(settings, store)

    def make_sandboxes(store: Store) -> Any:
        from lap_tui.sandbox import backend_for

        return backend_for(settings, store)

    gateway: list[Any] = []

    async def list_models() -> list[str]:
        if not gateway:
            from lap_tui.gateway import GatewayClient

            gateway.append(GatewayClient.from_settings(settings))
        return await gateway[0].list_models()

    return Services(settings=settings, open_store=open_store, make_engine=make_engine,
                    make_sandboxes=make_sandboxes, list_models=list_models,
                    state_path=state_path(settings.state_dir))


def launch(view: str | None = None, session: str | None = None, read_only: bool = False) -> int:
    settings = load_settings()
    from lap_tui.tui.app import LapApp

    app = LapApp(build_services(settings), view=view, session=session, read_only=read_only)
    app.run()
    app.save_state()
    return app.return_code or 0
