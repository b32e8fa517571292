"""The app's garbage-collection policy (collector.py): a chat's history leaves the generations
Python's collector walks once shown, and a closed chat is still freed (by the next quiet pass)."""

from __future__ import annotations

import gc
import time
import weakref

from lap_tui.tui.app import LapApp
from lap_tui.tui.widgets.transcript import TranscriptView
from tests.tui.conftest import AGENT_ID, SESSION_ID, chat_open, seed, seed_chat, wait_for


def _walked(objs: list[object]) -> list[object]:
    """Those of `objs` a collection would walk (in a generation, not frozen)."""
    ids = {id(o) for o in objs}
    return [o for o in gc.get_objects() if id(o) in ids]


async def test_a_chat_s_history_is_frozen_once_shown_and_freed_by_a_quiet_pass_once_closed(services_factory) -> None:
    services = services_factory()
    seed(services, seed_chat)
    app = LapApp(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.collector.started, what="start-up frozen")
        await app.open_chat(SESSION_ID, AGENT_ID)
        await wait_for(pilot, lambda: chat_open(app) and app.screen.shown.is_set(), what="history shown")
        view = app.screen.query_one(TranscriptView)
        entries = list(view.transcript.entries)
        assert len(entries) >= 6
        # built after start-up's freeze: only the chat's own settle took them out of the passes
        assert _walked([*entries, view.transcript]) == []

        gone = weakref.ref(view.transcript)
        del view, entries
        await pilot.press("escape", "escape")  # the draft, then the chat
        await wait_for(pilot, lambda: not chat_open(app), what="chat closed")
        await pilot.pause(0.1)
        # the app has been quiet for an hour: the pass walks the frozen heap too
        assert app.collector.quiet(time.monotonic() - 3600)
        assert gone() is None, "a closed chat's transcript stays frozen in a cycle"


def test_a_decorated_row_let_go_is_freed_at_once_not_left_for_a_collection() -> None:
    from rich.segment import Segment
    from rich.style import Style
    from textual.strip import Strip

    from lap_tui.tui.widgets.transcript import RowCache

    class Marker:  # freed with the strip (a Strip takes no weak reference)
        pass

    rows = RowCache(2)
    marker = Marker()
    strip = Strip([Segment("row", None, [marker])], 3)
    strip.divide([3])  # as Textual's compositor does: the strip now keeps [itself]
    styled = strip.apply_style(Style(bold=True))  # derived, kept in the strip's caches, composited too
    styled.divide([3])
    gone = weakref.ref(marker)
    del styled
    rows.put((1, False, 3), ([], strip))
    del strip, marker
    gc.disable()  # only reference counting may free it
    try:
        rows.put((2, False, 3), ([], Strip([], 0)))
        assert gone() is not None  # still kept
        rows.put((3, False, 3), ([], Strip([], 0)))
        assert gone() is None, "an evicted row waits for a garbage collection (or a freeze keeps it)"
    finally:
        gc.enable()
