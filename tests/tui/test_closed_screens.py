"""A background read that outlives its screen must not touch the screen's widgets.

Under load the chat's first read (`ChatScreen._load`) can still be awaiting the store when the
screen is closed (esc, or the app exiting): Textual removes the screen's widgets first and
cancels its workers only when the screen itself goes, so a worker resuming in between found no
`#title` and failed the whole app (`WorkerFailed: NoMatches('#title')`). Here the store's
answer is held until exactly that moment, so the order is forced rather than hoped for.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.chat import ChatScreen
from tests.tui.conftest import SESSION_ID, seed, seed_chat, wait_for


def held_until_closed(services, app_of):
    """The services, with the chat screen's first get_session answered only once the screen's
    title widget is gone (and its screen not yet)."""
    asked = asyncio.Event()
    open_store = services.open_store

    async def open_() -> object:
        store = await open_store()
        real = store.get_session

        async def get_session(session_id: str):
            row = await real(session_id)
            screen = app_of().screen
            if session_id == SESSION_ID and isinstance(screen, ChatScreen) and not asked.is_set():
                title = screen.query_one("#title")
                asked.set()
                while not title._closed:  # one loop turn at a time: resume right after it goes
                    await asyncio.sleep(0)
            return row

        store.get_session = get_session
        return store

    return replace(services, open_store=open_), asked


async def test_the_chat_closed_during_its_first_read_leaves_the_app_running(services_factory):
    services = services_factory()
    seed(services, seed_chat)
    app: LapApp | None = None
    services, asked = held_until_closed(services, lambda: app)
    app = LapApp(services, session=SESSION_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, asked.is_set, what="the chat's first read")
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        app.pop_screen()
        await wait_for(pilot, lambda: not chat.is_attached, what="the chat screen closed")
        await wait_for(pilot, lambda: all(w.is_finished for w in app.workers if w.node is chat),
                       what="the chat's workers finished")
        assert app.is_running and not isinstance(app.screen, ChatScreen)
    # run_test re-raises a worker's failure (WorkerFailed) on leaving the block.
