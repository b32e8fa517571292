"""Keys applied in the order they were typed: one key's whole journey before the next starts.

Textual (8.2.8) hands each key to the focused widget by posting it on that widget's queue and
returns at once; a binding that is not a priority one runs when the key has bubbled back up to
the app. With a burst in the app's queue (a paste, tmux `send-keys`, a fast typist, a loaded
machine) the next keys are therefore forwarded before the earlier ones were handled: `abc` Tab
`xyz` put `xyz` on the old input (Tab's focus change came after), and a priority binding such as
ctrl+j (send) ran before the letters typed before it had reached the draft (Textual #1009).

`KeyOrder` holds each new key until the one before it has landed: stopped by a widget, dropped,
or handled by the app's own bindings. Where a key is, is read from the pumps it visits: each one
publishes `message_signal` after handling a message, and a key that bubbles on sits in the
parent's queue by then. A key pushed a screen: the next one waits until that screen is mounted,
so it reaches the screen's focused widget.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Awaitable, Callable

from textual import events
from textual.message import Message
from textual.message_pump import MessagePump

if TYPE_CHECKING:
    from textual.app import App

STUCK_AFTER = 2.0  # seconds: a key still unaccounted for is let go (its widget went away under it)


class KeyOrder:
    def __init__(self, app: "App", deliver: Callable[[events.Key], Awaitable[None]]) -> None:
        self.app = app
        self._deliver = deliver  # Textual's own handling of an unforwarded key
        self.flying: events.Key | None = None
        self._since = 0.0
        self._watched: list[MessagePump] = []
        self.held: deque[events.Key | events.Paste] = deque()  # a paste is ordered like keys
        self._draining = False
        self._retry_armed = False

    async def key(self, event: events.Key) -> None:
        """A key from the terminal: handled now, or after the ones before it."""
        self.held.append(event)
        await self.drain()

    async def landed_at_app(self, event: events.Key) -> bool:
        """Called once the app has handled a forwarded key; True when it was the one in flight."""
        if event is not self.flying:
            return False
        self._land()
        await self.drain()
        return True

    async def drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self.held:
                if self.flying is not None and time.monotonic() - self._since < STUCK_AFTER:
                    self._retry_later()
                    return
                self._land()
                try:
                    screen = self.app.screen
                except Exception:  # noqa: BLE001 - no screen (closing): Textual handles the key as ever
                    screen = None
                if screen is not None and not screen.is_mounted:  # pushed by the key before: no focus yet
                    self._retry_later()
                    return
                event = self.held.popleft()
                self.flying, self._since = event, time.monotonic()
                await self._deliver(event)
                if self.flying is event:
                    if not event.is_forwarded:  # a priority binding took it: done already
                        self._land()
                    else:
                        self._follow(event)
        finally:
            self._draining = False

    # -- where the key in flight is
    def _follow(self, event: events.Key) -> None:
        """Watch the pumps the key will pass, from the one it was posted to up to the screen."""
        target = self.app.focused or self.app.screen
        node: MessagePump | None = target
        while node is not None and node is not self.app:
            node.message_signal.subscribe(self.app, self._make_after(node), immediate=True)
            self._watched.append(node)
            node = node._parent

    def _make_after(self, pump: MessagePump) -> Callable[[Message], None]:
        def after(message: Message) -> None:
            if message is not self.flying:
                return
            parent = pump._parent
            if parent is not None and _queued(parent, message):
                return  # bubbled on (to the app: landed_at_app settles it)
            self._land()
            self.app.call_next(self.drain)  # stopped or dropped here: the next key may go
        return after

    def _land(self) -> None:
        self.flying = None
        for node in self._watched:
            node.message_signal.unsubscribe(self.app)
        self._watched.clear()

    def _retry_later(self) -> None:
        # Normally the landing key or the mounted screen's refresh triggers the drain; this
        # only matters for a key whose widget was removed under it or a screen slow to mount.
        if not self._retry_armed:
            self._retry_armed = True

            def again() -> None:
                self._retry_armed = False
                self.app.call_next(self.drain)

            self.app.call_after_refresh(again) if self.flying is None else self.app.set_timer(0.1, again)


def _queued(pump: MessagePump, message: Message) -> bool:
    """Whether `message` waits in `pump`'s queue (Textual's own Queue keeps a deque, `values`)."""
    queue = pump._message_queue
    waiting = getattr(queue, "values", None)
    if waiting is None:
        waiting = getattr(queue, "_queue", ())  # an asyncio.Queue
    return message in waiting or getattr(pump, "_pending_message", None) is message
