"""The chat's transcript as one line-API widget: a frame draws only the rows on screen.

The rows come from `transcript_model.Transcript` (each block rendered once per width and kept);
this widget adds the decoration (a block's border, padding, background, the selection), keeps
the virtual height, streams text at the frame rate (chunks only queue; a 20 Hz tick flushes
each streaming step once), follows the tail only while the view is at its end, and holds the
reading position when something above the view changes height. There are no child widgets, so
Textual never re-arranges the transcript: the cost of a frame follows the screen, not the
session (the widget tree it replaces was re-arranged on every frame; docs/TUI.md).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.color import Color
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.timer import Timer

from lap_tui.tui import keymap
from lap_tui.tui.chat_model import Block, Change
from lap_tui.tui.safety import Sanitiser
from lap_tui.tui.widgets.scrollbar import finished, lean_vertical_scrollbar
from lap_tui.tui.transcript_model import GUTTER, AssistantEntry, Entry, Renderer, Transcript, theme_styles

_CODE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
TICK = 1 / 18  # streamed text reaches the screen at most this often (docs/TUI.md: why 18)
INPUT_FIRST = 0.04  # a tick this soon after a keypress is put off (never two in a row): see _flush_due
KEY_DELAY = 0.02  # ... by this much


class RowCache:
    """Decorated rows by key, the `size` used last kept. A Strip that Textual has composited is a
    reference cycle (Strip.divide keeps [self] in the strip's own cache): one let go here has that
    cache emptied, so it is freed at once, never left for a collection nor frozen with a page of
    history (collector.py). Reusing the Strip keeps its own caches' work for the next frame."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[int, bool, int], tuple[list[Segment], Strip]] = OrderedDict()

    def get(self, key: tuple[int, bool, int]) -> tuple[list[Segment], Strip] | None:
        hit = self._rows.get(key)
        if hit is not None:
            self._rows.move_to_end(key)
        return hit

    def put(self, key: tuple[int, bool, int], row: tuple[list[Segment], Strip]) -> None:
        old = self._rows.pop(key, None)
        if old is not None:
            _uncycle(old[1])
        self._rows[key] = row
        while len(self._rows) > self.size:
            _uncycle(self._rows.popitem(last=False)[1][1])

    def clear(self) -> None:
        for _, strip in self._rows.values():
            _uncycle(strip)
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


# Textual 8.2.8's caches inside a Strip: the divide cache may hold [self]; the others hold the
# strips derived from it (cropped, styled, filtered…), composited too and so cyclic the same way.
_STRIP_CACHES = ("_divide_cache", "_crop_cache", "_style_cache", "_filter_cache", "_line_length_cache",
                 "_crop_extend_cache", "_offsets_cache")


def _uncycle(strip: Strip, depth: int = 3) -> None:
    for name in _STRIP_CACHES:
        cache = getattr(strip, name, None)
        if cache is None:
            continue
        if depth:
            for value in [cache.get(k) for k in list(cache.keys())]:
                for derived in value if isinstance(value, list) else (value,):
                    if derived is not strip and isinstance(derived, Strip):
                        _uncycle(derived, depth - 1)
        cache.clear()


class TranscriptView(ScrollView, can_focus=True):
    BINDINGS = keymap.bindings("chat.up", "chat.down", "chat.copy", "chat.copy_code", "chat.toggle", "chat.input")
    COMPONENT_CLASSES = {"transcript--user", "transcript--user-border", "transcript--assistant-border",
                         "transcript--tool", "transcript--selected"}
    DEFAULT_CSS = """
    TranscriptView { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    TranscriptView > .transcript--user { background: $boost; }
    TranscriptView > .transcript--user-border { color: $primary; }
    TranscriptView > .transcript--assistant-border { color: $secondary; }
    TranscriptView > .transcript--tool { background: $surface; }
    TranscriptView > .transcript--selected { background: $primary 20%; }
    """

    class NeedOlder(Message):
        pass

    def __init__(self, sanitiser: Sanitiser, keys: dict[str, str], **kw) -> None:
        super().__init__(**kw)
        self._s = sanitiser
        self.transcript = Transcript(sanitiser, keys)
        self._streaming: set[AssistantEntry] = set()
        self._ticker: Timer | None = None
        self._skipped = False
        self._selected: Entry | None = None
        self._follow = True
        self._styles: dict[str, Style] = {}
        self._rows = RowCache(4096)
        self.has_older = False
        self.loading_older = False
        self._owed = 0  # rows scrolled up while an older page loaded
        self._drawn: dict[int, tuple[object, bool]] = {}  # row -> (its line, selected) as last drawn

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        return lean_vertical_scrollbar(self)  # redrawn every frame while a reply streams

    # -- set-up
    def on_mount(self) -> None:
        self._restyle()
        self.watch(self.app, "theme", lambda *_: self._restyle(), init=False)
        self._ticker = self.set_interval(TICK, self._flush_due, pause=not self._streaming)

    def on_unmount(self) -> None:
        # Textual 8.2.8 keeps a watcher's node until the watched value next changes: every chat
        # closed before the theme changed stayed in memory with its transcript. (Its
        # theme_changed_signal comes after the CSS refresh instead: the theme snapshots changed.)
        watchers = getattr(self.app, "__watchers", {}).get("theme")
        if watchers:
            watchers[:] = [w for w in watchers if w[0] is not self]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}
        self._rows.clear()

    def _style(self, name: str) -> Style:
        """A component's style ("": the widget's own), looked up once per style change."""
        got = self._styles.get(name)
        if got is None:
            got = self._styles[name] = (self.get_component_rich_style(f"transcript--{name}", partial=True)
                                        if name else self.rich_style)
        return got

    def _restyle(self) -> None:
        variables = self.app.theme_variables
        dark = self.app.current_theme.dark if self.app.current_theme else True
        try:  # a theme without hues (lap-mono) gets code without hues too
            grey = Color.parse(variables.get("primary", "")).hsl.s < 0.1
        except Exception:  # noqa: BLE001 - a theme's own colour syntax: keep the colours
            grey = False
        code = "bw" if grey else "monokai" if dark else "default"
        self.transcript.restyle(Renderer(theme_styles(variables), code))
        self._styles = {}
        self._rows.clear()
        self._resized()

    @property
    def _width(self) -> int:
        return max(10, self.scrollable_content_region.width)

    def on_resize(self) -> None:
        self._resized()

    def _resized(self) -> None:
        t = self.transcript
        anchor = None if self._follow else t.at(round(self.scroll_y))
        t.set_width(self._width)
        self._grew()
        if anchor is not None:  # the row at the top stays at the top (or its entry does)
            e, i = anchor
            self._set_y(t.top(e) + max(0, i))
        self.refresh()

    # -- rows
    def render_lines(self, crop: Region) -> list[Strip]:
        """The rows as `render_line` keeps them. Textual's styles cache would wrap each row in a
        new Strip every frame, which then misses the caches a Strip keeps of its own (filters,
        the compositor's divisions): at 2,000 chunks/s that was a fifth of the app's time. This
        widget draws its own background, gutter and selection, so with no border, padding,
        outline, tint or opacity (none in its CSS, nor in the themes) the rows are final."""
        st = self.styles
        if (any(st.padding) or any(e for e, _ in st.border) or any(e for e, _ in st.outline) or st.tint.a
                or self.opacity != 1.0 or st.text_opacity != 1.0):
            return super().render_lines(crop)
        return finished(self, [self.render_line(y) for y in crop.line_range], crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        t = self.transcript
        got = t.at(round(self.scroll_y) + y)
        base = self._style("")
        if got is None or got[1] < 0:  # past the end, or the margin above a block
            self._drawn[y] = (None, got is not None and got[0] is self._selected)
            return Strip.blank(width, base)
        e, i = got
        content = t.line(e, i)
        selected = e is self._selected
        self._drawn[y] = (content, selected)  # what this row shows now (_refresh_changed_rows)
        # A block's lines are kept per width, so a row drawn before (the view scrolled, or the
        # frame redrawn while text streams below) is a lookup: only new lines are decorated.
        key = (id(content), selected, width)
        hit = self._rows.get(key)
        if hit is not None and hit[0] is content:
            return hit[1]
        left, right = GUTTER[e.kind]
        cw = max(1, t.width - left - right)
        bg = self._style(e.kind) if e.kind in ("user", "tool") else None
        if selected:
            bg = bg + self._style("selected") if bg else self._style("selected")
        if e.kind in ("user", "assistant"):
            segs = [Segment("▌", self._style(f"{e.kind}-border")), Segment(" " * (left - 1))]
        else:
            segs = [Segment(" " * left)]
        segs += Segment.adjust_line_length(content, cw)
        segs.append(Segment(" " * right))
        if bg:
            segs = list(Segment.apply_style(segs, bg))
        strip = Strip(Segment.apply_style(segs, base), left + cw + right)
        if strip.cell_length != width:
            strip = strip.crop_extend(0, width, base)
        self._rows.put(key, (content, strip))
        return strip
    def _grew(self) -> None:
        """The transcript's height may have changed: the view follows the tail only if it is there."""
        self._set_height(self.transcript.height)
        if self._follow:
            self._set_y(self.max_scroll_y)
        self.refresh()

    def _set_height(self, height: int) -> None:
        """A new virtual height without a layout of the screen. Setting `virtual_size` asks for
        one (a reflow of every widget), and the layout then updates the scrollbar after the frame
        was drawn: two frames per streamed line instead of one (with py-spy at 2,000 chunks/s,
        half the app's time was frames). Nothing else is laid out differently when only the
        transcript's height changes, so the scrollbar is updated here, in the same frame; when it
        appears or goes, `_scroll_update` asks for the layout that needs (Textual 8.2.8)."""
        size = Size(self._width, height)
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size  # before the first layout: that layout reads it
            return
        self.set_reactive(TranscriptView.virtual_size, size)
        self._scroll_update(size)

    def _set_y(self, y: float) -> None:
        self.scroll_to(y=max(0, y), animate=False, immediate=True, force=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._follow = new >= self.max_scroll_y
        if new <= 0 < old and self.has_older and not self.loading_older:
            self.loading_older = True
            self.post_message(self.NeedOlder())

    @property
    def following(self) -> bool:
        return self._follow or self.scroll_y >= self.max_scroll_y - 1

    @property
    def at_end(self) -> bool:
        """At the very end (the state file's "followed the tail")."""
        return self._follow or self.scroll_y >= self.max_scroll_y

    # -- content
    async def show(self, blocks: list[Block]) -> None:
        self._track(self.transcript.extend(blocks))
        self._grew()
        if self.has_focus:  # focused before there was anything to select
            self.on_focus()

    async def prepend(self, blocks: list[Block], has_older: bool) -> None:
        """An older page above what is shown, keeping the view where it was."""
        self.has_older = has_older
        t = self.transcript
        n = len(t.entries)
        added = t.prepend(blocks)
        self._track(t.entries[:len(t.entries) - n])
        self.loading_older = False
        self._set_height(t.height)
        # rows scrolled up past the top while this page loaded are scrolled now; what goes
        # beyond this page asks for the next one
        y = self.scroll_y + added - self._owed
        self._owed = max(0, -round(y)) if self.has_older else 0
        self._set_y(y)
        self.refresh()
        if self._owed and not self.loading_older:
            self.loading_older = True
            self.post_message(self.NeedOlder())

    def _track(self, entries: list[Entry]) -> None:
        for e in entries:
            if isinstance(e, AssistantEntry) and e.streaming:
                self._stream(e)

    def _stream(self, e: AssistantEntry) -> None:
        if e in self._streaming:
            return
        self._streaming.add(e)
        if self._ticker is not None:
            self._ticker.resume()

    def _changed(self, e: Entry) -> None:
        """`e`'s lines changed: if it lies wholly above the view, the view moves by as much (the
        text being read stays put). A reply read in its middle grows below the view: nothing moves."""
        t = self.transcript
        if self._follow:
            t.changed(e)
            return
        _, end = t.span(e)
        before = t.height
        t.changed(e)
        if end <= round(self.scroll_y):
            self._set_height(t.height)
            self._set_y(self.scroll_y + t.height - before)

    async def apply(self, changes: list[Change]) -> None:
        t = self.transcript
        moved = False  # streamed text only queues (the tick shows it): a chunk costs no layout
        for ch in changes:
            b = ch.block
            e = t.by_key.get(b.key)
            if ch.op == "add":
                if e is None:
                    e = t.add(b)
                    moved = True
                    if isinstance(e, AssistantEntry) and e.streaming:
                        self._stream(e)
                continue
            if e is None:
                continue
            if ch.op == "append" and isinstance(e, AssistantEntry):
                e.append(ch.text, ch.end)
                self._stream(e)
                continue  # shown on the next tick
            if ch.op == "replace" and isinstance(e, AssistantEntry):
                self._streaming.discard(e)
                e.replace()
            elif ch.op == "update" and isinstance(e, AssistantEntry):
                if not b.streaming and e.streaming:
                    self._streaming.discard(e)
                    e.finish()
            self._changed(e)
            moved = True
        if moved:
            self._grew()

    async def _flush_due(self) -> None:
        if not self._streaming:
            if self._ticker is not None:
                self._ticker.pause()  # an idle chat costs no CPU; the next streamed text resumes it
            return
        now = time.monotonic()
        app = self.app
        if hasattr(app, "busy_at"):
            app.busy_at = now  # type: ignore[attr-defined] - LapApp: no full GC now
        # A keypress goes first: its frame then repaints only the draft; the text follows
        # KEY_DELAY later (never twice in a row).
        if not self._skipped and now - getattr(app, "input_at", 0.0) < INPUT_FIRST:
            self._skipped = True
            self.set_timer(KEY_DELAY, self._flush)
            return
        self._skipped = False
        self._flush()

    def _flush(self) -> None:
        t = self.transcript
        before = (t.height, self.scroll_y)
        moved = False
        for e in list(self._streaming):
            if e.flush():
                self._changed(e)
                moved = True
            if not e.streaming:
                self._streaming.discard(e)
        if not moved:
            return
        if (t.height, self.scroll_y) == before and self._drawn:
            self._refresh_changed_rows()  # the usual tick of a model's pace: a line grew
        else:
            self._grew()

    def _refresh_changed_rows(self) -> None:
        """Only the rows whose line is not the one drawn there. A model streams a few words a
        tick, so most ticks change the last line or two: redrawing the whole view wrote every
        row to the terminal (~10 KB a frame at 120x40, 20 frames a second over SSH)."""
        t = self.transcript
        top = round(self.scroll_y)
        width = self.size.width
        for y in range(self.scrollable_content_region.height):
            got = t.at(top + y)
            content = t.line(*got) if got is not None and got[1] >= 0 else None
            drawn = self._drawn.get(y)
            if drawn is None or drawn[0] is not content or drawn[1] is not (got is not None and got[0] is self._selected):
                self.refresh(Region(0, y, width, 1))

    # -- scrolling up past what is loaded
    def action_scroll_up(self) -> None:
        if not self._owe(1):
            super().action_scroll_up()

    def action_page_up(self) -> None:
        page = self.scrollable_content_region.height
        if not self._owe(page):
            self._set_y(self.scroll_y - page)

    def action_page_down(self) -> None:
        self._set_y(min(self.max_scroll_y, self.scroll_y + self.scrollable_content_region.height))

    def _owe(self, lines: int) -> bool:
        """Scrolling up past the top of what is loaded: the older page is asked for and the rest
        of the scroll made once it is in (PageUps in one burst stopped at the top)."""
        top = max(0.0, min(self.scroll_y, self.scroll_target_y))
        if not (self.has_older or self.loading_older) or top >= lines:
            return False
        self._owed += lines - round(top)
        if top > 0:
            self._set_y(0)
        if not self.loading_older:
            self.loading_older = True
            self.post_message(self.NeedOlder())
        return True

    # -- selecting, copying, expanding
    def _messages(self) -> list[Entry]:
        return [e for e, top, end in self.transcript.spans() if e.kind != "turn" and end > top]

    def _end(self, e: Entry) -> int:
        return self.transcript.top(e) + e.height(self.transcript.r, self.transcript.width)

    def on_focus(self) -> None:
        if self._selected is None or self._selected not in self.transcript.entries:
            msgs = self._messages()
            if msgs:  # the view stays where reading continues (the end, when following)
                self._select(msgs[-1], scroll=False)

    def on_blur(self) -> None:
        self._selected = None
        self.refresh()

    def _select(self, e: Entry, *, scroll: bool = True) -> None:
        self._selected = e
        if scroll:
            t = self.transcript
            top, end, h = t.top(e), self._end(e), self.scrollable_content_region.height
            if top < self.scroll_y or end - top > h:
                self._set_y(top)
            elif end > self.scroll_y + h:
                self._set_y(end - h)
        self.refresh()

    def action_select(self, step: int) -> None:
        msgs = self._messages()
        if not msgs:
            return
        if self._selected in msgs:
            at = msgs.index(self._selected)
            i = max(0, min(len(msgs) - 1, at + step))
            if step < 0 and at == 0 and self.has_older and not self.loading_older:
                self.loading_older = True
                self.post_message(self.NeedOlder())
        else:
            i = len(msgs) - 1
        self._select(msgs[i])

    @property
    def selected(self) -> Entry | None:
        return self._selected

    def selected_text(self) -> str | None:
        e = self._selected or (self._messages() or [None])[-1]
        return e.copy_text() if e is not None else None

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

    def toggle(self, e: Entry) -> None:
        """A tool call expands or collapses: its lines replace in place."""
        if e.kind != "tool":
            return
        e.collapsed = not e.collapsed
        self._changed(e)
        self._grew()

    def action_toggle(self) -> None:
        if self._selected is not None:
            self.toggle(self._selected)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        got = self.transcript.at(round(self.scroll_y) + offset.y)
        if got is None:
            return
        e, i = got
        if e.kind == "turn":
            return
        self._select(e, scroll=False)
        if e.kind == "tool" and i == 0:
            self.toggle(e)

    def action_focus_input(self) -> None:
        self.screen.action_focus_input()  # type: ignore[attr-defined]
