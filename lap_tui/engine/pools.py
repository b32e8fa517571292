"""An agent's warm pool follows the agent (sandbox/k8s/warm.py), its template on the image a cold
start of the agent gets: its CLI harness's when it names none (harness/image.py, as
engine/cli_turn.py does). sandbox/ may not import harness/, so the two meet here, for the CLI
and the TUI alike."""

from __future__ import annotations

from typing import Any

from lap_tui.domain.agent import Agent


async def follow_agent(settings: Any, store: Any, agent: Agent, **kw: Any) -> None:
    from lap_tui.engine.cli_turn import harness_definitions
    from lap_tui.harness.image import with_harness_image
    from lap_tui.sandbox.k8s import warm  # loaded only here: a local-only run never imports it

    h = harness_definitions(settings).get(agent.harness)
    if h is not None:
        agent = with_harness_image(agent, h, settings["harness_image_prefix"])
    await warm.follow_agent(settings, store, agent, **kw)
