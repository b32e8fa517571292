"""One session's chat: history from the journal, live events and text from the engine, a draft box.

The view renders only from the journal (Store.last_events, then EngineApi.watch) plus LiveText,
so a reopened terminal, a second terminal on the same session, and the driving terminal all
show the same thing. Only the engine's lease holder runs a turn; this screen just asks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.widgets import TextArea

from lap_tui.domain.errors import LapError
from lap_tui.domain.journal import EventKind, JournalEvent
from lap_tui.engine.api import LiveText
from lap_tui.tui import keymap
from lap_tui.tui.chat_model import ChatModel
from lap_tui.tui.history import fill_start, last_page
from lap_tui.tui.formatting import cost, short_id, tokens
from lap_tui.tui.loop import after_refresh
from lap_tui.tui.screens.base import LapScreen
from lap_tui.tui.widgets.transcript import TranscriptView

RESTORE_REFRESHES = 40  # at most this many refreshes to settle a reopened chat's scroll position


class ChatScreen(LapScreen):
    TITLE = "Chat"
    VIEW = "chat"
    # esc in the draft leaves it (to the messages), so `:` and `?` work; esc again goes back.
    BINDINGS = keymap.bindings("chat.send", "chat.cancel", "chat.retry", "chat.focus_log", "app.back")
    MUTATING = frozenset({"send", "cancel_turn", "retry"})
    DEFAULT_CSS = """
    ChatScreen #draft { height: auto; max-height: 8; min-height: 3; border: tall $primary 40%; }
    ChatScreen #draft:focus { border: tall $primary; }
    """

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.model = ChatModel()
        self._oldest_seq: int | None = None
        self.shown = asyncio.Event()  # the history is mounted (start-up waits for it before heavy work)
        self._held: list[JournalEvent] = []  # read but not mounted: the next older page
        self._held_more = False
        self._pages = 0
        self._agent_name = ""
        self._restoring = True

    def compose_body(self) -> ComposeResult:
        keys = {k: self.app.get_key_display(b) for k, b in self._key_bindings().items()}
        yield TranscriptView(self.lap.sanitiser, keys, id="log")
        area = TextArea(id="draft", soft_wrap=True, show_line_numbers=False, tab_behavior="focus",
                        placeholder=f"Message — {keys['chat.send']} sends, {keys['chat.focus_log']} moves to the "
                                    "messages", compact=True)
        if self.lap.services.deterministic:
            area.cursor_blink = False
        if self.lap.read_only:
            area.read_only = True
        yield area

    def _key_bindings(self):
        from textual.binding import Binding

        out = {}
        for id_ in ("chat.send", "chat.cancel", "chat.retry", "chat.focus_log"):
            k = keymap.KEYS[id_]
            key = self.lap.settings.keys.get(id_, k.key).split(",")[0].strip()
            out[id_] = Binding(key, k.action)
        return out

    def on_mount(self) -> None:
        draft = self.lap.state.drafts.get(self.session_id, "")
        area = self.query_one("#draft", TextArea)
        if draft:
            area.load_text(draft)
            area.move_cursor(area.document.end)
        # At once (Screen.set_focus), not Widget.focus(), which defers it: a ctrl+l handled in
        # between had its focus taken back to the draft.
        self.set_focus(area)
        self._load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.lap.note("session_id", self.session_id)

    # -- loading and following
    async def _gather(self, before_seq: int | None) -> tuple[list[JournalEvent], bool]:
        return await last_page(self.lap.store, self.session_id, before_seq)

    @work(group="chat-follow", exclusive=True)
    async def _load(self) -> None:
        store = self.lap.store
        first = self.lap.services.first_chat  # `--session ID`: read before Textual loaded (launch.py)
        if first is not None and first[0].id == self.session_id:
            self.lap.services.first_chat = None
            session, events, more = first
        else:
            try:
                session = await store.get_session(self.session_id)
            except LapError as exc:
                self.notify(str(exc), severity="error")
                self.shown.set()
                return
            if self._gone:
                return
            self._title(session)
            events, more = await self._gather(None)
            if self._gone:
                return
        self._agent_name = session.agent_name
        # Mount only the newest turns that fill the screen (and a little more); the rest of the
        # page is held for the first scroll up, without another read.
        width = max(20, self.app.size.width - 6)
        st = self.lap.state
        back = st.chat_scroll_from_end if self._restoring and st.session_id == self.session_id \
            and not st.chat_follow else 0.0  # reopened that far above the end: mount that much too
        cut = fill_start(events, width, self.app.size.height + 10 + int(back))
        if cut:
            self._held, self._held_more, events, more = events[:cut], more, events[cut:], True
        self._oldest_seq = events[0].seq if events else None
        for ev in events:
            self.model.apply(ev)
        self._title(session)  # with the journal's view of the turn in progress
        log = self.query_one(TranscriptView)
        log.has_older = more
        blocks = self.model.blocks
        # Following the tail (the usual case): the newest turns that fill the lower half are
        # mounted and painted first, the rest just above them a frame later (measured: the last
        # messages show ~25 ms sooner; most of a first open is the Markdown code's first use).
        split = 0
        if not self._restoring or self.lap.state.session_id != self.session_id or self.lap.state.chat_follow:
            near = fill_start(events, width, self.app.size.height // 2)
            if near:
                split = next((i for i, b in enumerate(blocks) if b.turn_id == events[near].turn_id), 0)
        await log.show(blocks[split:])
        if split:
            await after_refresh(self)
            await log.prepend(blocks[:split], more)
        await self._restore_scroll(log)
        self.shown.set()
        self.lap.collector.settled()  # the history lives as long as the chat: out of the collector's passes
        after = events[-1].seq if events else 0
        if not events:
            after = await store.last_seq(self.session_id)
        await self.lap.engine_ready.wait()  # the history shows first; the engine may still be loading
        if self._gone:
            return
        engine = self.lap.engine
        if session.status.value in ("queued", "running", "interrupted") and not self.lap.read_only \
                and hasattr(engine, "start"):
            engine.start(self.session_id)  # reattach: drive it here unless a live process holds its lease
        async for item in engine.watch(self.session_id, after_seq=after):
            if isinstance(item, LiveText):
                if item.session_id == self.session_id:
                    await log.apply(self.model.apply_live(item.turn_id, item.text))
                continue
            await log.apply(self.model.apply(item))
            if item.kind in (EventKind.TURN_COMPLETED, EventKind.TURN_FAILED, EventKind.TURN_CANCELLED,
                             EventKind.TURN_STARTED, EventKind.MODEL_MESSAGE):
                self._refresh_title()

    async def _restore_scroll(self, log: TranscriptView) -> None:
        """Reopen exactly where the view was left, `chat_scroll_from_end` lines above the bottom.
        Older turns are loaded until there is that much to scroll, and the offset is set again
        on each refresh until the transcript's height holds still (a width known only after the
        first layout re-wraps it): one early scroll_to was clamped to what was loaded then. A key
        pressed meanwhile ends it: the user leads."""
        st = self.lap.state
        restoring, self._restoring = self._restoring, False
        if not (restoring and st.session_id == self.session_id and not st.chat_follow):
            return
        from_end, began, last, still = st.chat_scroll_from_end, time.monotonic(), None, 0
        for _ in range(RESTORE_REFRESHES):
            await after_refresh(self)
            if self.app.input_at > began or not self.is_attached:
                return
            while log.max_scroll_y < from_end and (self._held or self._oldest_seq is not None and log.has_older):
                await self._older_page()
                await after_refresh(self)
            log.scroll_to(y=max(0, round(log.max_scroll_y - from_end)), animate=False, immediate=True)
            shape = (log.virtual_size.height, log.max_scroll_y)
            still = still + 1 if shape == last else 0
            last = shape
            if still >= 3:
                return

    @work(group="chat-title", exclusive=True)
    async def _refresh_title(self) -> None:
        # The journal is written before the session's row: right after a turn's last event the
        # row can still say running. Read again until it agrees with the journal (or 2 s pass).
        for _ in range(20):
            try:
                s = await self.lap.store.get_session(self.session_id)
            except LapError:
                return
            if self._gone:
                return
            self._title(s)
            if s.status.value not in ("queued", "running") or self.model.active_turn() is not None:
                return
            await asyncio.sleep(0.1)

    @property
    def _gone(self) -> bool:
        """Closed while a worker awaited the store. Textual removes a screen's widgets first and
        cancels its workers only when the screen itself goes (display is False from the start of
        that removal): a worker resuming in between found no #title and failed the app."""
        return not self.is_attached or not self.display

    def _title(self, s) -> None:
        name = self.lap.clean(s.title) if s.title else short_id(s.id)
        # A turn in progress says what the journal says (running, resumed…): the session's row
        # is written after the journal and said "queued" for a whole streamed reply.
        active = self.model.active_turn()
        status = active.status if active is not None else s.status.value
        self.query_one("#title").set(
            title=f"Chat · {s.agent_name} · {name}",
            detail=f"{status} · {tokens(s.prompt_tokens + s.completion_tokens)} tokens · {cost(s.cost_usd)}")

    @on(TranscriptView.NeedOlder)
    def _older(self) -> None:
        self._load_older()

    @work(group="chat-older", exclusive=True)
    async def _load_older(self) -> None:
        await self._older_page()

    async def _older_page(self) -> None:
        log = self.query_one(TranscriptView)
        if self._held:
            events, more, self._held = self._held, self._held_more, []
        elif self._oldest_seq is None:
            log.loading_older = False
            return
        else:
            events, more = await self._gather(self._oldest_seq)
        if events:
            self._oldest_seq = events[0].seq
        self._pages += 1
        older = ChatModel(prefix=f"p{self._pages}-")
        for ev in events:
            older.apply(ev)
        await log.prepend(older.blocks, more)
        self.lap.collector.settled()  # paging up a long session never has a full pass walk what is paged in

    # -- state
    @on(TextArea.Changed, "#draft")
    def _draft_changed(self, event: TextArea.Changed) -> None:
        self.lap.state.set_draft(self.session_id, event.text_area.text)
        self.lap._state_dirty = True

    def capture_state(self) -> None:
        from textual.screen import ModalScreen

        if next((s for s in reversed(self.lap.screen_stack) if not isinstance(s, ModalScreen)), None) is not self:
            return  # under `:` or `?` it is still the chat being read
        log = self.query_one(TranscriptView)
        st = self.lap.state
        st.session_id = self.session_id
        # At the very end only (not `following`'s one line of slack, which reopened one line off).
        at_end = log.at_end
        st.chat_follow = at_end
        st.chat_scroll_from_end = 0.0 if at_end else float(log.max_scroll_y - log.scroll_y)
        st.set_draft(self.session_id, self.query_one("#draft", TextArea).text)

    # -- actions
    # Focus moves with Screen.set_focus, at once: Widget.focus() defers it with call_later, so a
    # key typed right after ctrl+l (already queued) would still reach the draft.
    def action_focus_log(self) -> None:
        # The screen's focus, not log.has_focus: that flag follows a focus change a message later
        # (a ctrl+l handled right after the chat mounted read it stale and focused the draft).
        log = self.query_one(TranscriptView)
        self.set_focus(self.query_one("#draft", TextArea) if self.focused is log else log)

    def action_focus_input(self) -> None:
        self.set_focus(self.query_one("#draft", TextArea))

    def action_back(self) -> None:
        draft = self.query_one("#draft", TextArea)
        if draft.has_focus:
            self.set_focus(self.query_one(TranscriptView))
        elif self.app.screen_stack[0] is self or (
                len(self.app.screen_stack) == 2 and getattr(self.app.screen_stack[0], "VIEW", "") == "agents"):
            self.lap.go("sessions")  # opened at start-up straight into the chat: its list now
        else:
            self.lap.action_back()

    def action_send(self) -> None:
        if self.lap.refuse_if_read_only():
            return
        area = self.query_one("#draft", TextArea)
        text = area.text.strip()
        if not text:
            return
        if self.model.active_turn() is not None:
            self.notify("a turn is still running: it is queued after it", severity="information")
        self._send(text)

    @work(group="chat-send")
    async def _send(self, text: str) -> None:
        area = self.query_one("#draft", TextArea)
        await self.lap.engine_ready.wait()
        try:
            await self.lap.engine.send(self.session_id, text)
        except LapError as exc:
            self.notify(f"not sent: {exc}", severity="error", timeout=10)
            return
        if area.text.strip() == text:
            area.clear()
        self.lap.state.set_draft(self.session_id, area.text)
        self.lap._state_dirty = True
        self.query_one(TranscriptView).scroll_end(animate=False)

    def action_cancel_turn(self) -> None:
        turn = self.model.active_turn()
        if turn is None:
            self.notify("no turn is running")
            return
        self._engine_call("cancel", turn.turn_id)

    def action_retry(self) -> None:
        turn = self.model.last_failed_turn()
        if turn is not None:
            self._engine_call("retry", turn.turn_id)
            return
        last = next((b for b in reversed(self.model.blocks) if b.kind == "turn"), None)
        asked = next((b.text for b in self.model.blocks if b.kind == "user" and last is not None
                      and b.turn_id == last.turn_id), "")
        if last is not None and last.status == "cancelled" and asked.strip():
            # A cancelled turn is not resumed (its tools may have been stopped halfway): its
            # message is sent again as a new turn.
            self.notify("sending the cancelled turn's message again")
            self._send(asked.strip())
            return
        self.notify("the last turn did not fail and was not cancelled: nothing to retry")

    def set_title(self, title: str) -> None:
        self._set_title(title.strip())

    @work(group="chat-title-set")
    async def _set_title(self, title: str) -> None:
        try:
            s = await self.lap.store.update_session(self.session_id, title=title)
        except LapError as exc:
            self.notify(f"title: {exc}", severity="error")
            return
        if not self.is_attached:
            return
        self._title(s)
        self.notify(f"title set: {title}" if title else "title cleared")

    @work(group="chat-engine")
    async def _engine_call(self, what: str, turn_id: str) -> None:
        await self.lap.engine_ready.wait()
        try:
            await getattr(self.lap.engine, what)(turn_id)
        except LapError as exc:
            self.notify(f"{what}: {exc}", severity="error")

    def palette_commands(self) -> Iterable[SystemCommand]:
        if not self.lap.read_only:
            yield SystemCommand("Chat: Send", "Send the draft", self.action_send)
            yield SystemCommand("Chat: Cancel turn", "Stop the running turn", self.action_cancel_turn)
            yield SystemCommand("Chat: Retry", "Run a failed turn again from its last checkpoint, or send a "
                                "cancelled turn's message again", self.action_retry)
            yield SystemCommand("Chat: Set title", "Name this session (:title TEXT)",
                                lambda: self.lap.action_command_line(":title "))
        log = self.query_one(TranscriptView)
        yield SystemCommand("Chat: Copy message", "Copy the selected (or last) message (OSC 52)",
                            log.action_copy_message)
        yield SystemCommand("Chat: Copy code block", "Copy the last code block of the selected message",
                            log.action_copy_code)
