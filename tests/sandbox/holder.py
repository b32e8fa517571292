"""Run as a separate process by the SIGKILL test: start a long command in a sandbox and wait.

python -m tests.sandbox.holder MARKER   (environment: XDG_*_HOME and LAP_DATABASE_URL)
"""

from __future__ import annotations

import asyncio
import sys

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.sandbox import backend_for, ensure_for_session
from lap_tui.store import open_store


async def main(marker: str) -> None:
    settings = load_settings()
    store = await open_store(settings.database_url)
    agent = await store.create_agent(Agent(id=new_id(), name="holder", team="default", model="m"))
    session = await store.create_session(Session(id=new_id(), agent_id=agent.id))
    backend = backend_for(settings, store)
    sid = (await ensure_for_session(backend, store, agent, session)).id
    print(backend.workspace(sid), flush=True)
    script = (f"sleep {marker}1 & setsid sh -c 'sleep {marker}2' & (trap '' TERM HUP; sleep {marker}3) & "
              f"touch started; sleep {marker}4")
    await backend.exec(sid, ["sh", "-c", script], timeout=None)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
