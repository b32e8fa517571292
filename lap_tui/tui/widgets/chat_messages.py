"""The pieces of a chat: user and assistant messages, tool calls, a turn's status line.

All text passes through the app's Sanitiser (control sequences neutralised, secrets masked).
Assistant text streams into a plain open tail and becomes Markdown block by block as blocks
finish; the ChatLog decides when to flush (at the frame rate, never per chunk).
"""

from __future__ import annotations

import json
import re
import time

from rich.text import Text
from textual import events
from textual._wrap import compute_wrap_offsets  # (private, pinned Textual: what Static wraps with)
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from lap_tui.tui.chat_model import Block
from lap_tui.tui.formatting import cost, tokens
from lap_tui.tui.safety import Sanitiser
from lap_tui.tui.widgets.folding import (FOLD_AWAY, UNFOLD_NEAR, Folded, Run, Span, content_tops, plain_height,
                                          spans)

MAX_TOOL_OUTPUT = 8000  # characters shown; the journal keeps what the engine kept


class UserMessage(Static):
    DEFAULT_CSS = """
    UserMessage { border-left: thick $primary; padding: 0 1; margin: 1 0 0 0; background: $boost; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser) -> None:
        super().__init__(Text(sanitiser.clean(block.text)), classes="message")
        self.block = block

    def copy_text(self) -> str:
        return self.block.text


_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)
_MD_INLINE = re.compile(r"[*_`\\\[\]<>&|#]|^\s*([-+>]|\d+[.)])\s", re.M)
PIECE = 2_000  # a reply replaced whole is cut into runs of at least this many characters
MAX_TAIL = 3_000  # the open tail is cut mid-paragraph (at a wrapped line's end) once this long
KEEP = 500  # what a mid-paragraph cut leaves in the open tail
CONVERT_RATE = 8  # runs made Markdown per second while a reply streams (else one per refresh)
PLAIN_BIG = 16_000  # a finished paragraph this long without Markdown syntax stays plain text
LONG = 2 * PIECE  # a reply from history this long is shown in runs (so it can fold), not as one Markdown


def fence_open(text: str) -> bool:
    """Whether `text` ends inside a fenced code block."""
    return len(_FENCE.findall(text)) % 2 == 1


def seal_point(tail: str, in_fence: bool) -> int:
    """Where to cut the open tail: after its last blank line outside a code fence that is followed
    by an unindented line (0: nowhere).
    `in_fence`: whether the text before `tail` ends inside a fence."""
    pos = len(tail)
    while pos > 0:
        pos = tail.rfind("\n\n", 0, pos)
        if pos < 0:
            return 0
        nxt = tail[pos + 2:pos + 3]  # an indented line may continue a list item: not a block's end
        if nxt and nxt not in " \t\n" and not (in_fence ^ fence_open(tail[:pos])):
            return pos + 2
    return 0


def plain_enough(text: str) -> bool:
    """A paragraph that Markdown would show exactly as typed (no inline or block syntax)."""
    return _MD_INLINE.search(text) is None


_BREAKS = re.compile(r"\n\n|^ {0,3}(```|~~~)", re.M)


def segments(text: str, size: int = PIECE) -> list[str]:
    """`text` cut at blank lines outside code fences into runs of at least `size` characters."""
    out: list[str] = []
    start, in_fence = 0, False
    for m in _BREAKS.finditer(text):
        if m.group(1):
            in_fence = not in_fence
        elif not in_fence and m.end() - start >= size:
            out.append(text[start:m.end()])
            start = m.end()
    if start < len(text) or not out:
        out.append(text[start:])
    return out


class _Piece(Static):
    """Plain text shown while a reply streams (and for huge plain paragraphs afterwards)."""

    DEFAULT_CSS = "_Piece { height: auto; } _Piece.gap { margin-bottom: 1; }"


def _plain(text: str, *, piece: bool = True) -> _Piece:
    """Plain text of a finished run ("piece": not yet handed to a run)."""
    classes = ("piece " if piece else "") + ("gap" if text.endswith("\n\n") else "")
    return _Piece(Text(text.rstrip("\n")), classes=classes.strip())


class AssistantMessage(Vertical):
    """An assistant step. History renders as Markdown. While text streams, the frame-rate tick
    appends it to a plain open tail (at most MAX_TAIL characters: all that a flush re-wraps).
    Once the tail holds finished blocks (up to a blank line outside a code fence followed by an
    unindented line) they are sealed as a frozen plain piece, and each finished run becomes
    Markdown on a later frame tick, at most CONVERT_RATE a second (one per refresh once the step
    ends): the reply turns into Markdown block by block while it streams and no frame renders
    much. A paragraph too long for the tail is cut at wrapped rows' ends; its run becomes
    Markdown when the paragraph ends. Markdown made while streaming has its height pinned until
    the step ends (Textual would otherwise re-arrange every block of it each frame to learn its
    height). Textual's `Markdown.get_stream()` is not used: at thousands of chunks a second its
    per-paragraph mounts in a busy event loop froze the screen and delayed keys past 100 ms
    (measured; docs/TUI.md).
    """

    DEFAULT_CSS = """
    AssistantMessage { height: auto; border-left: thick $secondary; padding: 0 1; margin: 1 0 0 0; }
    AssistantMessage.-empty { display: none; }
    AssistantMessage > .body { height: auto; }
    AssistantMessage Markdown { margin: 0; padding: 0; }
    AssistantMessage > .note { color: $warning; }
    AssistantMessage > Markdown > *:last-child, AssistantMessage > .body > Markdown:last-child > *:last-child {
        margin-bottom: 0;
    }
    """

    class Waiting(Message):
        """Runs wait to become Markdown: the ChatLog should check folds (which converts them)."""

    def __init__(self, block: Block, sanitiser: Sanitiser, *, folds: bool = False) -> None:
        """`folds`: in a ChatLog, which says through `refold` which runs are near the view."""
        super().__init__(classes="message")
        self.block = block
        self._sanitiser = sanitiser
        self._safe = sanitiser.stream()
        self._pending: list[str] = []
        self._streamed = block.streaming  # text arrives through the plain tail
        self._initial = self._safe.feed(block.text) if block.streaming else sanitiser.clean(block.text)
        self._sealed: list[str] = []  # the run of frozen plain pieces not yet Markdown (cleaned text)
        self._tail = ""  # the open piece (cleaned text)
        self._in_fence = False  # whether the sealed text ends inside a code fence
        self._upto = len(block.text)  # raw characters of the block this widget already has
        self._generation = 0  # bumps when the queued conversions are superseded
        self._runs: list[Run] = []  # the finished runs, in order (what folding works on)
        self._queue: list[Run] = []  # runs of plain pieces to become Markdown
        self._pinned: list[Markdown] = []  # Markdown made while streaming, height fixed
        self._to_pin: list[Markdown] = []  # ... whose height is not known yet
        self._settling: dict[Markdown, int] = {}  # Markdown standing in at the height it replaced
        self._settled: set[Widget] = set()  # ... let go this round: not measured again yet
        self._near: set[Run] | None = set() if folds else None  # runs not far from the view (refold)
        self._stepping = False  # a conversion per refresh is under way (outside a ChatLog)
        self._next_convert = 0.0
        self._width = 0
        self.set_class(not block.text and not block.streaming, "-empty")

    def compose(self) -> ComposeResult:
        if self._streamed:
            # What is finished lives in its own container, so the open tail growing re-arranges
            # this message's three children, not every block of the reply (the body's layout
            # stays cached until a block is added to it).
            yield Vertical(classes="body")
            yield _Piece(classes="tail")
        elif len(self._initial) > LONG:
            # A long reply from history: plain runs that become Markdown when near the view, the
            # newest first, and fold when far from it (never ~200 blocks mounted at once).
            self._runs = [Run(seg, [_plain(seg, piece=False)]) for seg in segments(self._initial)]
            yield Vertical(*[r.widgets[0] for r in self._runs], classes="body")
        else:
            yield Markdown(self._initial)
        note = Static(self._note(), classes="note")
        note.display = bool(self._note())  # an empty note took a line under every reply
        yield note

    def on_mount(self) -> None:
        if self._streamed and self._initial:
            self._add_text(self._initial)
            self._show_tail()
        elif self._runs:
            self._convert(list(self._runs))

    def _note(self) -> str:
        return "(interrupted)" if self.block.interrupted else ""

    def _set_note(self, note: Static) -> None:
        note.update(self._note())
        note.display = bool(self._note())

    def append(self, raw: str, end: int) -> None:
        if end <= self._upto:
            return  # built after this text arrived: it is already in
        self._pending.append(raw[len(raw) - (end - self._upto):] if end - len(raw) < self._upto else raw)
        self._upto = end
        self.remove_class("-empty")

    # -- streaming as plain pieces
    def _tail_widget(self) -> Static | None:
        try:
            return self.query_one(".tail", _Piece)
        except Exception:  # noqa: BLE001 - finalised
            return None

    def _body(self) -> Widget:
        return self.query_one(".body", Vertical)

    def _body_or_none(self) -> Widget | None:
        return next((c for c in self.children if c.has_class("body")), None)

    def _seal(self, cut: int) -> None:
        piece, self._tail = self._tail[:cut], self._tail[cut:]
        self._sealed.append(piece)
        self._in_fence = self._in_fence ^ fence_open(piece)
        if self._tail_widget() is None:
            return
        gap = " gap" if piece.endswith("\n\n") else ""
        self._body().mount(_Piece(Text(piece.rstrip("\n")), classes="piece" + gap))
        if piece.endswith("\n\n") and not self._in_fence:  # the run is a finished block
            self._convert([self._take_run()])

    def _take_run(self) -> Run:
        pieces = [c for c in self._body().children if isinstance(c, _Piece) and c.has_class("piece")]
        run = Run("".join(self._sealed), pieces[len(pieces) - len(self._sealed):])
        for w in run.widgets:
            w.remove_class("piece")
        self._sealed = []
        self._runs.append(run)
        return run

    def _wrap_cut(self) -> int:
        """A cut at the end of a wrapped line, so the frozen piece and the rest wrap as one text."""
        width = self.content_region.width or self.size.width
        limit = len(self._tail) - KEEP
        nl = self._tail.rfind("\n", 0, limit)
        if width <= 0:
            sp = self._tail.rfind(" ", 0, limit)
            return max(nl, sp) + 1 if max(nl, sp) > 0 else limit
        start = nl + 1 if nl >= 0 else 0
        offsets = [o for o in compute_wrap_offsets(self._tail[start:limit + KEEP // 2], width, 8)
                   if start + o <= limit]
        return start + offsets[-1] if offsets else (nl + 1 if nl > 0 else limit)

    def _add_text(self, text: str) -> None:
        self._tail += text
        while self._tail:
            cut = seal_point(self._tail, self._in_fence)  # every finished block is sealed
            if cut <= 0 and len(self._tail) >= MAX_TAIL:
                cut = self._wrap_cut()
            if cut <= 0:
                break
            self._seal(cut)

    def _show_tail(self) -> None:
        tail = self._tail_widget()
        if tail is not None:
            tail.update(Text(self._tail.rstrip("\n")))

    async def flush(self, final: bool = False) -> None:
        text = self._safe.feed("".join(self._pending)) if self._pending else ""
        self._pending.clear()
        if final:
            text += self._safe.flush()
        if text:
            self._add_text(text)
            self._show_tail()

    # -- finalising
    async def finish(self) -> None:
        await self.flush(final=True)
        if self._streamed:
            self._finalise_pieces()
        self._set_note(self.query_one(".note", Static))
        self.set_class(not self.block.text, "-empty")

    async def replace(self) -> None:
        """The final text differs from what streamed (or nothing streamed): render it once, whole."""
        self._pending.clear()
        self._safe = self._sanitiser.stream()
        self._upto = len(self.block.text)
        text = self._sanitiser.clean(self.block.text)
        self._streamed = False
        self._sealed, self._tail = [], ""
        self._generation += 1  # what was queued to convert is about to be removed
        self._queue, self._pinned, self._to_pin = [], [], []
        note = self.query_one(".note", Static)
        old = [c for c in self.children if c is not note]
        self._runs = [Run(seg, [_plain(seg, piece=False)]) for seg in segments(text)]
        await self.mount(Vertical(*[r.widgets[0] for r in self._runs], classes="body"), before=note)
        await self.remove_children(old)
        self._convert(list(self._runs))
        self._set_note(note)
        self.set_class(not self.block.text, "-empty")

    def _finalise_pieces(self) -> None:
        """The rest of the streamed text becomes Markdown (the open tail joins the last run), and
        the pinned heights are let go now that nothing grows."""
        if self._tail:
            self._sealed.append(self._tail)
            self._body().mount(_Piece(Text(self._tail.rstrip("\n")), classes="piece"))
            self._tail = ""
        if (tail := self._tail_widget()) is not None:
            tail.remove()
        self._streamed = False
        for md in self._pinned:
            md.styles.clear_rule("height")
        self._pinned, self._to_pin = [], []
        self._convert([self._take_run()] if self._sealed else [])

    def _convert(self, groups: list[Run]) -> None:
        """Queue runs of plain pieces to become one Markdown widget each: while the reply streams
        the frame tick converts at most CONVERT_RATE a second (in the frame it already makes, so
        a key never waits behind extra frames); afterwards, in a ChatLog, each of its fold checks
        converts one near the view (it asks again while some wait), elsewhere one per refresh.
        A huge paragraph without Markdown syntax stays plain."""
        self._queue.extend(groups)
        if self._streamed or not self._queue:
            return
        if self._near is not None:
            self.post_message(self.Waiting())
        elif not self._stepping:
            self._stepping = True
            self.call_after_refresh(self._convert_step, self._generation)

    async def tick(self) -> None:
        """The frame tick while the reply streams: new text, heights to pin, a run to convert."""
        if self._pending:
            await self.flush()
        if self._to_pin:
            self._to_pin = [md for md in self._to_pin if not self._pin_height(md)]
        now = time.monotonic()
        if self._queue and now >= self._next_convert:
            self._next_convert = now + 1 / CONVERT_RATE
            self._convert_one()

    def _convert_step(self, gen: int) -> None:
        if gen != self._generation or not self.is_attached:
            self._stepping = False
            return
        if self._convert_one() and self._queue:
            self.call_after_refresh(self._convert_step, gen)
        else:
            self._stepping = False

    def _convert_one(self) -> bool:
        """Make one waiting run Markdown: the newest (the one next to the tail the user follows)
        of those near the view, once the ChatLog has said which are (a far one folds instead)."""
        while self._queue:
            run = next((r for r in reversed(self._queue) if self._near is None or r in self._near), None)
            if run is None:
                return False
            self._queue.remove(run)
            if len(run.text) >= PLAIN_BIG and plain_enough(run.text):
                run.kept_plain = True  # Markdown would show it as it is: keep the plain pieces
                continue
            md = Markdown(run.text)
            if self._streamed:  # next to the tail: nothing above it moves
                self._pinned.append(md)
                self._to_pin.append(md)
            elif self._near is not None and (height := self._height_of(run.widgets)) is not None:
                self._stand_in(md, height)  # in a ChatLog, which settles it
            run.widgets[0].parent.mount(md, before=run.widgets[0])  # type: ignore[union-attr]
            for w in run.widgets:
                w.remove()
            run.widgets, run.markdown = [md], True
            return True
        return False

    def _height_of(self, widgets: list[Widget]) -> int | None:
        """The lines `widgets` take in the body (None: not laid out yet). From the body's
        arrangement, not the widgets' sizes: those are only set once a widget has been on screen."""
        if not all(w.is_mounted for w in widgets):
            return None
        where = spans(widgets[0].parent)  # type: ignore[arg-type]
        if widgets[0] not in where or widgets[-1] not in where:
            return None
        return where[widgets[-1]].end - where[widgets[0]].start or None

    def _stand_in(self, md: Markdown, height: int) -> None:
        """`md` takes `height` lines until its own height is known (see settle): a block
        turning into Markdown above what the user reads must not move the text they read."""
        md.styles.height = height
        self._settling[md] = height

    def _pin_height(self, md: Markdown) -> bool:
        """Whether `md` is done with: parsed, its height then fixed while the reply streams (or gone)."""
        height = self._measure(md)
        if height is None:
            return not md.is_attached
        md.styles.height = height
        return True

    def _measure(self, md: Markdown) -> int | None:
        """`md`'s own height once it has parsed (None: not yet), on screen or not."""
        if not md.is_attached or not md.children or not all(c.is_mounted for c in md.children):
            return None
        body: Widget = md.parent  # type: ignore[assignment]
        return md.get_content_height(body.size, self.app.size, body.content_size.width) or None

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width:
            old, self._width = self._width, event.size.width
            gutter = self.styles.gutter.width
            for run in self._runs:  # a folded run's height held for the old width only
                if run.folded is not None and old > gutter:
                    self._refit(run, old - gutter, self._width - gutter)
            for md in self._pinned:  # re-wrapped at the new width: measure again
                md.styles.clear_rule("height")
            self._to_pin = list(self._pinned) if self._streamed else []
            if not self._streamed:
                self._pinned = []
            for md in self._settling:  # measured for the old width: let it take its own
                md.styles.clear_rule("height")
            self._settling = {}

    # -- folding (see widgets/folding.py)
    @property
    def foldable(self) -> bool:
        return bool(self._runs)

    def body_top(self) -> int | None:
        """The body's first line in this message's content lines (None: no body)."""
        body = self._body_or_none()
        if body is None:
            return None
        return content_tops(self).get(body)

    def refold(self, top: int, bottom: int) -> bool:
        """Fold the finished runs far from the viewport (`top` to `bottom`, in the body's lines),
        unfold the folded ones near it. True if a run is not laid out yet (ask again later)."""
        body = self._body_or_none()
        if body is None or not body.size.width:
            return body is not None
        later = False
        where = spans(body)
        h = max(1, bottom - top)
        self._near = set()
        for run in self._runs:
            if run.folded is not None:
                s = where.get(run.folded)
                if s is not None and s.end > top - UNFOLD_NEAR * h and s.start < bottom + UNFOLD_NEAR * h:
                    self._unfold(run)
                    later = True  # to be measured (and settled)
                continue
            got = [where.get(w) for w in run.widgets]
            if not got or any(g is None for g in got) or not self._laid_out(run, where):
                later = True  # where it will be is not known yet
                continue
            start, end = got[0].start, got[-1].end  # type: ignore[union-attr]
            if end < top - FOLD_AWAY * h or start > bottom + FOLD_AWAY * h:
                self._fold(run, end - start)
            else:
                self._near.add(run)
        if not self._streamed and self._convert_one():
            later = True  # one per check, so no frame renders much; more may wait
        return later

    def _laid_out(self, run: Run, where: dict[Widget, Span]) -> bool:
        """Whether the run's height is known and final (parsed, not standing in for another)."""
        for w in run.widgets:
            span = where.get(w)
            if (span is None or span.end <= span.start or not w.is_mounted or w in self._to_pin
                    or w in self._settling or w in self._settled):
                return False
            if isinstance(w, Markdown) and self._measure(w) is None:
                return False
        return True

    def settle(self, top: int) -> tuple[int, bool]:
        """Let Markdown standing in at another's height take its own once it has parsed. Returns
        how many lines that added above `top` (the viewport's top, in the body's lines: the
        ChatLog scrolls by as much so the text in view stays put) and whether some still wait."""
        self._settled = set()
        body = self._body_or_none()
        if body is None or not self._settling:
            return 0, False
        where = spans(body)
        shift = 0
        for md, height in list(self._settling.items()):
            if not md.is_attached or md.parent is not body:
                del self._settling[md]
            elif md not in where or (own := self._measure(md)) is None:
                continue  # not parsed yet
            else:
                del self._settling[md]
                self._settled.add(md)
                md.styles.height = own  # measured for this width (a width change lets it go)
                self._pinned.append(md)
                if where[md].end <= top:
                    shift += own - height
        return shift, bool(self._settling)

    def _fold(self, run: Run, height: int) -> None:
        # All in one go, no await: the placeholder and the run's widgets going away take effect
        # in the same layout, so nothing below or above moves.
        run.height = height
        run.folded = Folded(run)
        first = run.widgets[0]
        first.parent.mount(run.folded, before=first)  # type: ignore[union-attr]
        for w in run.widgets:
            w.display = False
            w.remove()
        if run in self._queue:
            self._queue.remove(run)
        self._pinned = [m for m in self._pinned if m not in run.widgets]
        run.widgets = []

    def _refit(self, run: Run, old: int, new: int) -> None:
        """A folded run's height for a new content width: exact for plain text, scaled by how
        its plain text re-wraps for Markdown (settled when it unfolds)."""
        was, now = plain_height(run.text, old), plain_height(run.text, new)
        if run.markdown:
            run.height = max(1, round(run.height * now / was)) if was else run.height
        else:
            run.height = now + (1 if run.text.endswith("\n\n") else 0)
        run.folded.styles.height = run.height  # type: ignore[union-attr]

    def _unfold(self, run: Run) -> None:
        """The run back: as Markdown standing in at the folded height until its own is known (so
        nothing moves while it parses; see settle), or plain text waiting to become Markdown."""
        folded, run.folded = run.folded, None
        if folded is None:
            return
        if run.markdown or (run.waiting and not self._streamed):
            w: Widget = Markdown(run.text)
            run.markdown = True
            self._stand_in(w, run.height)  # type: ignore[arg-type]
        else:
            w = _plain(run.text, piece=False)
        folded.parent.mount(w, before=folded)  # type: ignore[union-attr]
        folded.display = False
        folded.remove()
        run.widgets = [w]
        if run.waiting:
            self._convert([run])

    def copy_text(self) -> str:
        return self._sanitiser.clean(self.block.text)


def _summary(arguments: str) -> str:
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    if isinstance(args, dict):
        for key in ("command", "cmd", "path", "query", "url"):
            if isinstance(args.get(key), (str, list)):
                v = args[key]
                return " ".join(v) if isinstance(v, list) else v
    return arguments


class ToolCallBlock(Collapsible):
    DEFAULT_CSS = """
    ToolCallBlock { margin: 0 0 0 2; padding: 0; border: none; background: $surface; }
    ToolCallBlock > Contents { padding: 0 0 0 2; }
    ToolCallBlock .output { color: $text-muted; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser) -> None:
        self.block = block
        self._s = sanitiser
        self._args = Static("", classes="args")
        self._output = Static("", classes="output")
        super().__init__(self._args, self._output, title=self._make_title(), collapsed=True, classes="message")
        self._fill()

    def _make_title(self) -> Text:
        """Text, not str: Collapsible parses a str title as markup, and the name and arguments
        are the model's."""
        b = self.block
        mark = {"requested": "·", "running": "◐", "finished": "✓" if (b.exit_code or 0) == 0 else "✗",
                "interrupted": "!"}.get(b.state, "·")
        summary = self._s.clean(_summary(b.arguments)).replace("\n", " ")
        if len(summary) > 60:
            summary = summary[:59] + "…"
        tail = ""
        if b.state == "finished":
            tail = f" · exit {b.exit_code}" if b.exit_code is not None else " · done"
        elif b.state == "interrupted":
            tail = " · interrupted"
        elif b.state == "running":
            tail = " · running"
        return Text(f"{mark} {self._s.line(b.name)} {summary}{tail}")

    def _fill(self) -> None:
        b = self.block
        self._args.update(Text("$ " + self._s.clean(_summary(b.arguments) or b.arguments), style="bold"))
        out = self._s.clean(b.output or "")
        if len(out) > MAX_TOOL_OUTPUT:
            out = "… (" + str(len(out) - MAX_TOOL_OUTPUT) + " characters above)\n" + out[-MAX_TOOL_OUTPUT:]
        notes = []
        if b.truncated:
            notes.append("(output truncated by the engine)")
        if b.reason:
            notes.append(self._s.clean(b.reason))
        self._output.update(Text(out + ("\n" if out and notes else "") + " ".join(notes)))

    def refresh_block(self) -> None:
        self.title = self._make_title()
        self._fill()

    def copy_text(self) -> str:
        return self._s.clean(f"$ {_summary(self.block.arguments)}\n{self.block.output or ''}")


class TurnStatus(Static):
    DEFAULT_CSS = """
    TurnStatus { color: $text-muted; padding: 0 1 0 2; }
    TurnStatus.-failed { color: $error; }
    TurnStatus.-running, TurnStatus.-resumed { color: $accent; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser, keys: dict[str, str]) -> None:
        super().__init__("")
        self.block = block
        self._s = sanitiser
        self._keys = keys
        self.refresh_block()

    def refresh_block(self) -> None:
        b = self.block
        head = {"queued": "… queued", "running": "◐ running", "resumed": "↻ resumed", "completed": "✓ done",
                "failed": "✗ failed", "cancelled": "■ cancelled", "interrupted": "! interrupted"}.get(b.status,
                                                                                                     b.status)
        reason = self._s.clean(b.reason) if b.reason else ""
        if reason.lower().startswith(b.status):  # "cancelled by the user": not "cancelled: cancelled by…"
            head, reason = head.split(" ")[0] + " " + reason, ""
        parts = [head + (f": {reason}" if reason else "")]
        if b.prompt_tokens or b.completion_tokens:
            parts.append(f"{tokens(b.prompt_tokens)} in / {tokens(b.completion_tokens)} out")
            parts.append(cost(b.cost_usd))
        if b.status == "failed":
            parts.append(f"{self._keys.get('chat.retry', 'ctrl+r')} retries")
        elif b.status in ("queued", "running", "resumed"):
            parts.append(f"{self._keys.get('chat.cancel', 'ctrl+g')} cancels")
        for c in ("queued", "running", "resumed", "completed", "failed", "cancelled"):
            self.set_class(b.status == c, f"-{c}")
        self.update(Text(" · ".join(parts)))  # the reason quotes a gateway or a tool: never markup
