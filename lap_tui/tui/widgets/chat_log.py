"""The chat's scrolling log: mounts blocks as widgets, streams text at the frame rate, follows the tail.

Text chunks only queue on their message; a 20 Hz tick hands each streaming message what
queued (and lets it do its background conversion), so rendering cost follows the frame rate,
not the chunk count. The log is
anchored to its bottom and lets go as soon as the user scrolls up (Textual's anchor()).
Only the newest turns are mounted; older pages mount when the user reaches the top.
"""

from __future__ import annotations

import re
import time

from textual.containers import VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget

from lap_tui.tui import keymap
from lap_tui.tui.chat_model import Block, Change
from lap_tui.tui.safety import Sanitiser
from lap_tui.tui.widgets.chat_messages import AssistantMessage, ToolCallBlock, TurnStatus, UserMessage
from lap_tui.tui.widgets.folding import content_tops

_CODE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
TICK = 1 / 20  # streamed text reaches the screen at most this often
INPUT_FIRST = 0.04  # a tick this soon after a keypress is put off (never two in a row): see _flush_due
KEY_DELAY = 0.02  # ... by this much
REFOLD_EVERY = 0.25  # seconds between fold checks while text streams (see widgets/folding.py)
REFOLD_RETRY = 0.05  # ... and while what was just mounted waits to be measured (at most 100 times)


class ChatLog(VerticalScroll, can_focus=True):
    BINDINGS = keymap.bindings("chat.up", "chat.down", "chat.copy", "chat.copy_code", "chat.toggle", "chat.input")
    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding: 0 1 1 0; scrollbar-size-vertical: 1; }
    ChatLog > .-selected { background: $primary 20%; }
    ChatLog > #older { color: $text-muted; text-align: center; width: 100%; }
    """

    class NeedOlder(Message):
        pass

    def __init__(self, sanitiser: Sanitiser, keys: dict[str, str], **kw) -> None:
        super().__init__(**kw)
        self._s = sanitiser
        self._keys = keys
        self._widgets: dict[str, Widget] = {}
        self._streaming: set[AssistantMessage] = set()
        self._ticker: Timer | None = None
        self._skipped = False
        self._next_refold = 0.0
        self._refold_due = False
        self._refold_retry: Timer | None = None
        self._refold_tries = 0
        self._selected: Widget | None = None
        self.has_older = False
        self.loading_older = False
        self._owed = 0  # lines scrolled up while an older page loaded

    def on_mount(self) -> None:
        self.anchor()
        self._ticker = self.set_interval(TICK, self._flush_due, pause=not self._streaming)

    def _stream(self, w: AssistantMessage) -> None:
        self._streaming.add(w)
        if self._ticker is not None:
            self._ticker.resume()

    def _make(self, block: Block) -> Widget:
        if block.kind == "user":
            w: Widget = UserMessage(block, self._s)
        elif block.kind == "assistant":
            w = AssistantMessage(block, self._s, folds=True)
            if block.streaming:
                self._stream(w)  # type: ignore[arg-type]
        elif block.kind == "tool":
            w = ToolCallBlock(block, self._s)
        else:
            w = TurnStatus(block, self._s, self._keys)
        self._widgets[block.key] = w
        return w

    def _turn_widget(self, block: Block) -> Widget | None:
        if block.kind == "turn":
            return None
        return self._widgets.get(f"turn:{block.turn_id}")

    async def show(self, blocks: list[Block]) -> None:
        """The first page: mounted in one go, turn status lines last within each turn."""
        await self.mount_all(self._ordered(blocks))
        self.scroll_end(animate=False, immediate=True)
        self._refold_soon()  # a long reply's far runs fold before they would become Markdown

    async def prepend(self, blocks: list[Block], has_older: bool) -> None:
        """An older page above what is shown, keeping the view where it was."""
        first = next((c for c in self.children if c.id != "older"), None)
        before_h = self.virtual_size.height
        widgets = self._ordered(blocks)
        if widgets:
            await self.mount_all(widgets, before=first) if first else await self.mount_all(widgets)
        self.has_older = has_older

        def keep_place() -> None:
            # Lines scrolled up past the top while this page loaded (until now: keys in between
            # are owed too) are scrolled now; what goes beyond this page asks for the next one.
            self.loading_older = False
            y = self.scroll_y + (self.virtual_size.height - before_h) - self._owed
            self._owed = max(0, -round(y)) if self.has_older else 0
            self.scroll_to(y=max(0, y), animate=False, immediate=True)
            if self._owed and not self.loading_older:
                self.loading_older = True
                self.post_message(self.NeedOlder())

        self.call_after_refresh(keep_place)
        self._refold_soon()

    def _ordered(self, blocks: list[Block]) -> list[Widget]:
        out: list[Widget] = []
        turn_pos: dict[str | None, int] = {}
        for b in blocks:
            w = self._make(b)
            if b.kind == "turn":
                turn_pos[b.turn_id] = len(out)
                out.append(w)
            elif b.turn_id in turn_pos:
                # keep the turn's status line after its content
                idx = turn_pos[b.turn_id]
                status = out.pop(idx)
                out.append(w)
                out.append(status)
                turn_pos = {t: (p - 1 if p > idx else p) for t, p in turn_pos.items()}
                turn_pos[b.turn_id] = len(out) - 1
            else:
                out.append(w)
        return out

    async def apply(self, changes: list[Change]) -> None:
        for ch in changes:
            b = ch.block
            w = self._widgets.get(b.key)
            if ch.op == "add":
                if w is None:
                    w = self._make(b)
                    before = self._turn_widget(b)
                    await self.mount(w, before=before) if before is not None else await self.mount(w)
            elif w is None:
                continue
            elif ch.op == "append" and isinstance(w, AssistantMessage):
                w.append(ch.text, ch.end)
                self._stream(w)
            elif ch.op == "replace" and isinstance(w, AssistantMessage):
                self._streaming.discard(w)
                await w.replace()
            elif ch.op == "update":
                if isinstance(w, AssistantMessage):
                    if not b.streaming:
                        self._streaming.discard(w)
                        await w.finish()
                        self.refold()  # what is far away folds before it would be made Markdown
                elif hasattr(w, "refresh_block"):
                    w.refresh_block()

    async def _flush_due(self) -> None:
        if not self._streaming:
            if self._ticker is not None:
                self._ticker.pause()  # an idle chat costs no CPU; the next streamed text resumes it
            return
        now = time.monotonic()
        self.app.busy_at = now  # type: ignore[attr-defined] - LapApp: no full GC now
        # A keypress goes first: its frame then repaints only the draft, not a scrolled log with
        # new text, so typing stays quick under a flood of text. The text follows KEY_DELAY later
        # (not a whole tick: the stream would stand still for 100 ms); never twice in a row.
        if not self._skipped and now - self.app.input_at < INPUT_FIRST:  # type: ignore[attr-defined]
            self._skipped = True
            self.set_timer(KEY_DELAY, self._flush_late)
            return
        self._skipped = False
        await self._flush(now)

    async def _flush_late(self) -> None:
        if self._streaming:
            await self._flush(time.monotonic())

    async def _flush(self, now: float) -> None:
        for w in list(self._streaming):
            await w.tick()
        if now >= self._next_refold:
            self._next_refold = now + REFOLD_EVERY
            self.refold()

    # -- folding: runs of long replies far from the viewport keep only their text
    def refold(self) -> None:
        self._refold_due = False
        msgs = [c for c in self.children if isinstance(c, AssistantMessage) and c.foldable]
        if not msgs or not self.size:
            return
        size = self.scrollable_content_region.size
        tops = content_tops(self, size)
        top = round(self.scroll_y)
        if self.following:  # where the anchor puts the view once laid out (scroll_y may lag behind)
            top = max(top, self.arrange(size).total_region.bottom - size.height)
        later, shift = False, 0
        for m in msgs:
            y, body = tops.get(m), m.body_top()
            if y is not None and body is not None:
                lines, waiting = m.settle(top - y - body)
                shift += lines
                later = m.refold(top - y - body, top + size.height - y - body) or waiting or later
        if shift and not self.following:
            self._keep_reading(shift)
        # Runs just made or unfolded (a width change) are measured on a later frame; while text
        # streams the tick asks again anyway. Never for long: an idle chat costs nothing.
        self._refold_tries = self._refold_tries + 1 if later else 0
        if later and not self._streaming and self._refold_retry is None and self._refold_tries < 100:
            self._refold_retry = self.set_timer(REFOLD_RETRY, self._retry_refold)

    def _keep_reading(self, lines: int) -> None:
        """Scroll by `lines` that were just added above the view, so the text in view stays put.
        Set without validation (as Textual's own anchoring does): the content that makes the new
        offset valid is laid out in the same frame."""
        y = max(0, round(self.scroll_y) + lines)
        self.set_reactive(ChatLog.scroll_y, y)
        self.set_reactive(ChatLog.scroll_target_y, y)
        self.vertical_scrollbar.position = y
        self.refresh(layout=True)

    def _retry_refold(self) -> None:
        self._refold_retry = None
        self.refold()

    def _refold_soon(self) -> None:
        if not self._refold_due:
            self._refold_due = True
            self.call_after_refresh(self.refold)

    def on_resize(self) -> None:
        self._refold_soon()

    def on_assistant_message_waiting(self, event: AssistantMessage.Waiting) -> None:
        event.stop()
        self._refold_soon()

    # -- scrolling and the older page
    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._refold_soon()
        if new <= 0 and old > 0 and self.has_older and not self.loading_older:
            self.loading_older = True
            self.post_message(self.NeedOlder())

    def action_scroll_up(self) -> None:
        if not self._owe(1):
            super().action_scroll_up()

    # Pages turn at once: Textual scrolls after the next refresh, from where the view is then,
    # so a second PageUp typed before it (a burst) turned the same page again.
    def action_page_up(self) -> None:
        page = self.scrollable_content_region.height
        if not self._owe(page):
            self.scroll_to(y=max(0, self.scroll_y - page), animate=False, immediate=True)

    def action_page_down(self) -> None:
        self.scroll_to(y=min(self.max_scroll_y, self.scroll_y + self.scrollable_content_region.height),
                       animate=False, immediate=True)

    def _owe(self, lines: int) -> bool:
        """Scrolling up past the top of what is mounted: the older page is asked for and the
        rest of the scroll made once it is in (PageUps in one burst stopped at the top)."""
        top = max(0.0, min(self.scroll_y, self.scroll_target_y))
        if not (self.has_older or self.loading_older) or top >= lines:
            return False
        self._owed += lines - round(top)
        if top > 0:
            self.scroll_to(y=0, animate=False, immediate=True)
        if not self.loading_older:
            self.loading_older = True
            self.post_message(self.NeedOlder())
        return True

    @property
    def following(self) -> bool:
        """At the bottom, or anchored there and not let go by the user: content that grows
        after the last scroll (a finished reply turning into Markdown) does not count."""
        return (self.is_anchored and not self._anchor_released) or self.scroll_y >= self.max_scroll_y - 1

    # -- selecting, copying, expanding
    def _messages(self) -> list[Widget]:
        return [c for c in self.children if c.has_class("message") and c.display]

    def on_focus(self) -> None:
        if self._selected is None or self._selected not in self.children:
            msgs = self._messages()
            if msgs:
                # The view stays where reading continues (the end, when following): scrolling to
                # the top of a long last reply sent the reader hundreds of lines back.
                self._select(msgs[-1], scroll=False)

    def on_blur(self) -> None:
        if self._selected is not None:
            self._selected.remove_class("-selected")
            self._selected = None

    def _select(self, w: Widget, *, scroll: bool = True) -> None:
        if self._selected is not None:
            self._selected.remove_class("-selected")
        self._selected = w
        w.add_class("-selected")
        if scroll:
            self.scroll_to_widget(w, animate=False, top=w.outer_size.height > self.size.height)

    def action_select(self, step: int) -> None:
        msgs = self._messages()
        if not msgs:
            return
        if self._selected in msgs:
            i = max(0, min(len(msgs) - 1, msgs.index(self._selected) + step))
            if step < 0 and msgs.index(self._selected) == 0 and self.has_older and not self.loading_older:
                self.loading_older = True
                self.post_message(self.NeedOlder())
        else:
            i = len(msgs) - 1
        self._select(msgs[i])

    def selected_text(self) -> str | None:
        w = self._selected or (self._messages() or [None])[-1]
        return w.copy_text() if w is not None and hasattr(w, "copy_text") else None

    def action_copy_message(self) -> None:
        text = self.selected_text()
        if text:
            self.app.copy_to_clipboard(text)
            self.notify(f"copied {len(text)} characters (OSC 52)")

    def action_copy_code(self) -> None:
        text = self.selected_text() or ""
        blocks = _CODE.findall(text)
        if not blocks:
            self.notify("no code block in this message", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify(f"copied the code block ({len(blocks[-1])} characters)" +
                    (f"; {len(blocks)} in the message, the last one" if len(blocks) > 1 else ""))

    def action_toggle(self) -> None:
        if isinstance(self._selected, ToolCallBlock):
            self._selected.collapsed = not self._selected.collapsed

    def action_focus_input(self) -> None:
        self.screen.action_focus_input()
