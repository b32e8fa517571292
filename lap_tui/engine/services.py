"""Builds the engine with its real services; the sandbox backend and the gateway client
are constructed on first use, so nothing heavy loads before it is needed."""

from __future__ import annotations

from typing import Any

from lap_tui.config import Settings
from lap_tui.engine.engine import Engine, EngineOptions
from lap_tui.store.base import Store


def build_engine(settings: Settings, store: Store, *, options: EngineOptions | None = None) -> Engine:
    def sandboxes() -> Any:
        from lap_tui.sandbox import backend_for

        return backend_for(settings, store)

    def gateway() -> Any:
        from lap_tui.gateway import GatewayClient

        return GatewayClient.from_settings(settings)

    return Engine(store, settings, sandboxes=sandboxes, gateway=gateway, options=options)
