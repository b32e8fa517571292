"""Which journal events a chat shows first: the last whole turns of a session, read in pages.

No Textual here: `lap-tui --session ID` reads the page before Textual loads (launch.py), on the
loop the app then runs on, as the agents list is read; the chat screen reads older pages the
same way as the user scrolls up.
"""

from __future__ import annotations

from lap_tui.domain.journal import EventKind, JournalEvent
from lap_tui.store.base import Store

PAGE_TURNS = 8  # turns mounted at first and per older page
FETCH = 400  # events read per query while gathering a page
MAX_FETCH = 20_000  # a single giant turn: stop gathering after this many events


def page_start(events: list[JournalEvent], turns: int) -> int | None:
    """Index where the last `turns` turns begin; None when `events` hold fewer turns."""
    firsts: dict[str, int] = {}
    for i, ev in enumerate(events):
        if ev.turn_id and ev.turn_id not in firsts:
            firsts[ev.turn_id] = i
    starts = sorted(firsts.values())
    if len(starts) <= turns:
        return None
    return starts[-turns]


def fill_start(events: list[JournalEvent], width: int, lines: int) -> int:
    """Index of the first event of the newest whole turns whose text roughly fills `lines` rows
    at `width` columns (at least one turn); 0 when all of `events` is needed."""
    height = 0
    turn = None
    for i in range(len(events) - 1, -1, -1):
        ev = events[i]
        if ev.turn_id != turn:
            if height >= lines and turn is not None:
                return i + 1
            turn = ev.turn_id
            height += 2  # the turn's status line and a margin
        text = (ev.data or {}).get("text") if ev.kind in (EventKind.USER_MESSAGE, EventKind.MODEL_MESSAGE) else None
        if text:
            height += 1 + sum(len(line) // width + 1 for line in str(text).split("\n"))
        elif ev.kind in (EventKind.TOOL_STARTED, EventKind.MODEL_MESSAGE):
            height += 1
    return 0


async def last_page(store: Store, session_id: str, before_seq: int | None) -> tuple[list[JournalEvent], bool]:
    """The last PAGE_TURNS whole turns before `before_seq`, and whether older events exist."""
    events: list[JournalEvent] = []
    while True:
        page = await store.last_events(session_id, FETCH, before_seq=before_seq)
        events = page + events
        exhausted = len(page) < FETCH
        start = page_start(events, PAGE_TURNS)
        if start is not None:
            return events[start:], True
        if exhausted or len(events) >= MAX_FETCH or not page:
            return events, not exhausted
        before_seq = page[0].seq
