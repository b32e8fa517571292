"""The chat transcript as rows: blocks rendered once per width into lines, looked up by row.

No Textual here (Rich only): `widgets/transcript.py` draws the rows a frame shows. Each entry
(user message, assistant step, tool call, turn line) renders its content once per content width
and keeps the lines; the transcript keeps each entry's height and where it starts, so a frame
costs the rows on screen, never the length of the session. An assistant step that streams is
kept as finished parts (each finished block rendered as Markdown once), the plain pieces of a
paragraph still open (cut at wrapped lines' ends, so they read as one text) and the open tail
(the only text a flush renders again). Untrusted text passes the Sanitiser and is always shown
as plain `Text` or Markdown source, never markup; Markdown links are not made hyperlinks (a
model's URL never becomes a terminal escape).
"""

from __future__ import annotations

import bisect
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate

from markdown_it import MarkdownIt
from rich._wrap import divide_line  # (private, pinned Rich: what Text.wrap breaks lines with)
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markdown import Markdown
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from rich.theme import Theme

from lap_tui.domain.text import SafeStream, Sanitiser
from lap_tui.tui.chat_model import Block
from lap_tui.tui.formatting import cost, tokens

Line = list[Segment]
MAX_TOOL_OUTPUT = 8000  # characters shown; the journal keeps what the engine kept
MAX_TAIL = 1_500  # the open tail is cut mid-paragraph (at a wrapped line's end) once this long
KEEP = 300  # what a mid-paragraph cut leaves in the open tail
PLAIN_BIG = 16_000  # a finished paragraph this long without Markdown syntax stays plain text
KEEP_RENDERED = 400  # blocks whose rendered lines are kept (the others keep only their height)

# Columns an entry's decoration takes (left, right) and blank rows above it: the view draws
# them (border, padding, selection), the model renders content in what is left.
GUTTER = {"user": (2, 1), "assistant": (2, 1), "tool": (4, 0), "turn": (2, 1)}
MARGIN = {"user": 1, "assistant": 1, "tool": 0, "turn": 0}

_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)
_MD_INLINE = re.compile(r"[*_`\\\[\]<>&|#]|^\s*([-+>]|\d+[.)])\s", re.M)


def fence_open(text: str) -> bool:
    """Whether `text` ends inside a fenced code block."""
    return len(_FENCE.findall(text)) % 2 == 1


def seal_point(tail: str, in_fence: bool) -> int:
    """Where a finished block ends in the open tail: after its last blank line outside a code
    fence that is followed by an unindented line (0: nowhere; an indented line may continue a
    list item). `in_fence`: whether the text before `tail` ends inside a fence."""
    pos = len(tail)
    while pos > 0:
        pos = tail.rfind("\n\n", 0, pos)
        if pos < 0:
            return 0
        nxt = tail[pos + 2:pos + 3]
        if nxt and nxt not in " \t\n" and not (in_fence ^ fence_open(tail[:pos])):
            return pos + 2
    return 0


def plain_enough(text: str) -> bool:
    """A paragraph that Markdown would show exactly as typed (no inline or block syntax)."""
    return _MD_INLINE.search(text) is None


def wrap_cut(text: str, width: int, limit: int) -> int:
    """A cut at or before `limit` at the end of a wrapped line of `text`'s last line, so the
    frozen piece and the rest wrap as one text (0: none)."""
    nl = text.rfind("\n", 0, limit)
    start = nl + 1
    if width > 0:
        offsets = [o for o in divide_line(text[start:], width, fold=True) if start + o <= limit]
        if offsets:
            return start + offsets[-1]
    return start


def summary(arguments: str) -> str:
    """A tool call's arguments as one short string (its command, path, query…)."""
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    if isinstance(args, dict):
        for key in ("command", "cmd", "path", "query", "url"):
            if isinstance(args.get(key), (str, list)):
                v = args[key]
                return " ".join(map(str, v)) if isinstance(v, list) else v
    return arguments


class SharedParserMarkdown(Markdown):
    """Rich's Markdown with one parser for every block: Rich builds a MarkdownIt (compiling its
    linkify patterns) for each Markdown, which cost twice the parse itself (paging up through a
    long session: 11 % of the loop's time against 5 % for parsing) and left each as a reference
    cycle for the collector. The attributes set are Rich's own (test_transcript checks the
    output is Rich's)."""

    _parser: MarkdownIt | None = None

    def __init__(self, markup: str, code_theme: str = "monokai", hyperlinks: bool = False) -> None:
        parser = SharedParserMarkdown._parser
        if parser is None:
            parser = SharedParserMarkdown._parser = MarkdownIt().enable("strikethrough").enable("table")
        self.markup = markup
        self.parsed = parser.parse(markup)
        self.code_theme = code_theme
        self.justify = None
        self.style = "none"
        self.hyperlinks = hyperlinks
        self.inline_code_lexer = None
        self.inline_code_theme = code_theme


class Renderer:
    """Renders Rich renderables into lines at a width with the transcript's theme (style names
    `lap.*` and Rich's `markdown.*`), which the view builds from the app's theme."""

    def __init__(self, theme: Theme | None = None, code_theme: str = "monokai") -> None:
        self.code_theme = code_theme
        self.console = Console(width=80, theme=theme, force_terminal=True, color_system="truecolor",
                               legacy_windows=False, markup=False, emoji=False, highlight=False)

    def lines(self, renderable: RenderableType, width: int) -> list[Line]:
        options: ConsoleOptions = self.console.options.update(width=max(1, width), highlight=False)
        lines = self.console.render_lines(renderable, options, pad=False, new_lines=False)
        return [[s for s in line if not s.control] for line in lines]  # nothing but text and style

    def plain(self, text: str, width: int, style: str = "") -> list[Line]:
        if not text:
            return []
        return self.lines(Text(text, style=style, end=""), width)

    def markdown(self, text: str, width: int) -> list[Line]:
        if not text.strip():
            return []
        lines = self.lines(SharedParserMarkdown(text, code_theme=self.code_theme, hyperlinks=False), width)
        while lines and _blank(lines[-1]):
            lines.pop()  # no trailing blank rows (the next entry has its own margin)
        return lines


def _blank(line: Line) -> bool:
    """No text and no background (a code block's padding row has a background: it stays)."""
    return all(not s.text.strip() and not (s.style and s.style.bgcolor) for s in line)


@dataclass(eq=False)
class Part:
    """A stretch of an assistant step rendered as one unit: a finished block as Markdown, or a
    plain piece (of a paragraph still open, or a huge one without Markdown syntax)."""

    text: str
    markdown: bool
    gap: bool = False  # a blank row after it when another part follows (it ends a block)
    _cache: dict[int, list[Line]] = field(default_factory=dict)

    def lines(self, r: Renderer, width: int) -> list[Line]:
        got = self._cache.get(width)
        if got is None:
            got = r.markdown(self.text, width) if self.markdown else r.plain(self.text.rstrip("\n"), width)
            self._cache = {width: got}  # one width at a time: a resize renders again
        return got


class Entry:
    """One block of the transcript and its lines for the current content width."""

    def __init__(self, block: Block, sanitiser: Sanitiser, keys: dict[str, str]) -> None:
        self.block = block
        self.kind = block.kind
        self._s = sanitiser
        self._keys = keys
        self.collapsed = True  # tool calls
        self._width = -1
        self._lines: list[Line] | None = None
        self._n = -1  # rows of content at _width: kept when the lines are let go

    def invalidate(self) -> None:
        self._lines, self._n = None, -1

    def drop(self) -> None:
        """Let the rendered lines go (far from the view); the height stays known."""
        self._lines = None

    def content_width(self, width: int) -> int:
        left, right = GUTTER[self.kind]
        return max(1, width - left - right)

    def lines(self, r: Renderer, width: int) -> list[Line]:
        if self._lines is None or self._width != width:
            self._width = width
            self._lines = self.render(r, self.content_width(width))
            self._n = len(self._lines)
        return self._lines

    def height(self, r: Renderer, width: int) -> int:
        n = self._n if self._width == width and self._n >= 0 else len(self.lines(r, width))
        return n + (MARGIN[self.kind] if n else 0)

    def line(self, r: Renderer, width: int, i: int) -> Line:
        return self.lines(r, width)[i]

    def render(self, r: Renderer, width: int) -> list[Line]:
        b = self.block
        if self.kind == "user":
            return r.plain(self._s.clean(b.text), width, "lap.user") or [[]]
        if self.kind == "tool":
            return self._tool(r, width)
        return self._turn(r, width)

    def copy_text(self) -> str:
        b = self.block
        if self.kind == "tool":
            return self._s.clean(f"$ {summary(b.arguments)}\n{b.output or ''}")
        return self._s.clean(b.text)

    # -- tool calls: a title line; expanded, the command and its output below it
    def title(self) -> str:
        b = self.block
        mark = {"requested": "·", "running": "◐", "finished": "✓" if (b.exit_code or 0) == 0 else "✗",
                "interrupted": "!"}.get(b.state, "·")
        short = self._s.clean(summary(b.arguments)).replace("\n", " ")
        if len(short) > 60:
            short = short[:59] + "…"
        tail = ""
        if b.state == "finished":
            tail = f" · exit {b.exit_code}" if b.exit_code is not None else " · done"
        elif b.state == "interrupted":
            tail = " · interrupted"
        elif b.state == "running":
            tail = " · running"
        return f"{'▶' if self.collapsed else '▼'} {mark} {self._s.line(b.name)} {short}{tail}"

    def _tool(self, r: Renderer, width: int) -> list[Line]:
        b = self.block
        out = r.plain(self.title(), width, "lap.tool.title")
        if self.collapsed:
            return out
        out += r.plain("$ " + self._s.clean(summary(b.arguments) or b.arguments), width, "lap.tool.command")
        text = self._s.clean(b.output or "")
        if len(text) > MAX_TOOL_OUTPUT:
            text = "… (" + str(len(text) - MAX_TOOL_OUTPUT) + " characters above)\n" + text[-MAX_TOOL_OUTPUT:]
        notes = []
        if b.truncated:
            notes.append("(output truncated by the engine)")
        if b.reason:
            notes.append(self._s.clean(b.reason))
        return out + r.plain(text + ("\n" if text and notes else "") + " ".join(notes), width, "lap.tool.output")

    def _turn(self, r: Renderer, width: int) -> list[Line]:
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
        style = {"failed": "lap.turn.failed", "running": "lap.turn.active", "resumed": "lap.turn.active"}
        return r.plain(" · ".join(parts), width, style.get(b.status, "lap.turn"))


class AssistantEntry(Entry):
    """An assistant step: finished parts, the plain pieces of the paragraph still open, and the
    open tail. Streamed text queues until `flush` (the view's frame tick), which renders only the
    tail again; a finished block is rendered as Markdown once."""

    def __init__(self, block: Block, sanitiser: Sanitiser, keys: dict[str, str]) -> None:
        super().__init__(block, sanitiser, keys)
        self._safe: SafeStream = sanitiser.stream()
        self._pending: list[str] = []
        self._upto = len(block.text)  # raw characters of the block this entry already has
        self.parts: list[Part] = []  # finished parts, then the plain pieces of the paragraph still open
        self._n_open = 0
        self._tail = ""
        self._in_fence = False
        self._tops: list[int] = []  # first line of each part (finished, then open) at _pwidth
        self._pwidth = -1
        self._tail_lines: list[Line] | None = None
        self._tail_width = -1
        self._gap: Line = []  # the blank row above the open block: the same object each tick (a row
        # is redrawn when its line is another object: TranscriptView._refresh_changed_rows)
        self.streaming = block.streaming
        if block.streaming:
            self._add(self._safe.feed(block.text))
        else:
            self._whole(sanitiser.clean(block.text))

    # -- text in
    def append(self, raw: str, end: int) -> None:
        if end <= self._upto:
            return  # made after this text arrived: it is already in
        self._pending.append(raw[len(raw) - (end - self._upto):] if end - len(raw) < self._upto else raw)
        self._upto = end

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def flush(self, final: bool = False) -> bool:
        """Queued text into the parts. True if the lines changed."""
        text = self._safe.feed("".join(self._pending)) if self._pending else ""
        self._pending.clear()
        if final:
            text += self._safe.flush()
        if text:
            self._add(text)
        return bool(text)

    def finish(self) -> None:
        """The step ended: the rest becomes Markdown (the open paragraph with it)."""
        self.flush(final=True)
        self.streaming = False
        if self._tail or self._n_open:
            self._finished(self._tail)
        self._tail = ""
        self._relayout()

    def replace(self) -> None:
        """The final text differs from what streamed (or nothing streamed): rendered once, whole."""
        self._pending.clear()
        self._safe = self._s.stream()
        self._upto = len(self.block.text)
        self.streaming = False
        self.parts, self._n_open, self._tail, self._in_fence = [], 0, "", False
        self._whole(self._s.clean(self.block.text))
        self._relayout()

    def _whole(self, text: str) -> None:
        self._tail = text
        while (cut := seal_point(self._tail, self._in_fence)) > 0:
            piece, self._tail = self._tail[:cut], self._tail[cut:]
            self._finished(piece)
        if self._tail:
            self._finished(self._tail)
            self._tail = ""

    @property
    def _open(self) -> list[Part]:
        """The plain pieces of the paragraph still open."""
        return self.parts[len(self.parts) - self._n_open:]

    def _finished(self, text: str) -> None:
        """A block ends with `text` (after the open paragraph's pieces): it becomes Markdown, or
        a huge paragraph without Markdown syntax keeps its plain pieces (already rendered: a
        1 MB paragraph is never rendered again in one go)."""
        n = self._n_open
        first = len(self.parts) - n
        size = len(text) + sum(len(p.text) for p in self.parts[first:])
        self._n_open = 0
        del self._tops[first:]  # a part's top depends only on those before it
        if size >= PLAIN_BIG and plain_enough(text) and all(plain_enough(p.text) for p in self.parts[first:]):
            if text:  # Markdown would show it the same, at a far higher cost
                self.parts.append(Part(text, markdown=False))
            self.parts[-1].gap = True
            return
        whole = "".join(p.text for p in self.parts[first:]) + text
        del self.parts[first:]
        self.parts.append(Part(whole, markdown=True, gap=True))

    def _add(self, text: str) -> None:
        self._tail += text
        while self._tail:
            cut = seal_point(self._tail, self._in_fence)
            if cut > 0:  # a finished block (with the open paragraph's pieces before it)
                piece, self._tail = self._tail[:cut], self._tail[cut:]
                self._in_fence ^= fence_open(piece)
                self._finished(piece)
                continue
            if len(self._tail) < MAX_TAIL:
                break
            cut = wrap_cut(self._tail, self.content_width(self._width) if self._width > 0 else 0,
                           len(self._tail) - KEEP)
            if cut <= 0:
                cut = len(self._tail) - KEEP
            piece, self._tail = self._tail[:cut], self._tail[cut:]
            self._in_fence ^= fence_open(piece)
            del self._tops[len(self.parts):]
            self.parts.append(Part(piece, markdown=False))
            self._n_open += 1
        self._tail_lines = None

    def invalidate(self) -> None:
        self._tail_lines = None  # the parts keep their lines

    def drop(self) -> None:
        if not self.streaming:  # the parts' heights stay in _tops
            for p in self.parts:
                p._cache = {}

    def _relayout(self) -> None:
        self._tops, self._pwidth, self._tail_lines, self._lines = [], -1, None, None

    # -- lines out: looked up by index, never concatenated (a long reply has thousands)
    def _note(self) -> str:
        return "(interrupted)" if self.block.interrupted and not self.streaming else ""

    def _layout(self, r: Renderer, width: int) -> None:
        cw = self.content_width(width)
        if self._pwidth != cw:
            self._pwidth, self._tops = cw, []
        parts = self.parts
        tops = self._tops
        # parts only grow while streaming (and all are laid out again after a replace/finish):
        # only the new ones are measured. A gap row separates finished blocks.
        for i in range(len(tops), len(parts) + 1):
            if i == 0:
                tops.append(0)
                continue
            prev = parts[i - 1]
            gap = 1 if prev.gap and i < len(parts) and prev.lines(r, cw) else 0
            tops.append(tops[i - 1] + len(prev.lines(r, cw)) + gap)

    def _tail_rendered(self, r: Renderer, width: int) -> list[Line]:
        cw = self.content_width(width)
        if self._tail_lines is None or self._tail_width != cw:
            self._tail_width = cw
            self._tail_lines = r.plain(self._tail.rstrip("\n"), cw)
            if self._tail.strip() and self.parts and not self._n_open and self.parts[-1].gap:
                self._tail_lines = [self._gap] + self._tail_lines  # a new block after a finished one
        return self._tail_lines

    def lines(self, r: Renderer, width: int) -> list[Line]:  # only for small replies and tests
        return [self.line(r, width, i) for i in range(self.count(r, width))]

    def count(self, r: Renderer, width: int) -> int:
        self._width = width
        self._layout(r, width)
        n = self._tops[-1] + len(self._tail_rendered(r, width)) + (1 if self._note() else 0)
        return n

    def height(self, r: Renderer, width: int) -> int:
        n = self.count(r, width)
        return n + (MARGIN["assistant"] if n else 0)

    def line(self, r: Renderer, width: int, i: int) -> Line:
        self._layout(r, width)
        cw = self.content_width(width)
        body = self._tops[-1]
        if i < body:
            k = bisect.bisect_right(self._tops, i) - 1
            got = self.parts[k].lines(r, cw)
            return got[i - self._tops[k]] if i - self._tops[k] < len(got) else []
        tail = self._tail_rendered(r, width)
        if i - body < len(tail):
            return tail[i - body]
        return r.plain(self._note(), cw, "lap.warning")[0] if self._note() else []


def make_entry(block: Block, sanitiser: Sanitiser, keys: dict[str, str]) -> Entry:
    return (AssistantEntry if block.kind == "assistant" else Entry)(block, sanitiser, keys)


class Transcript:
    """The entries in order (a turn's status line after its content) and where each starts at
    the current width; a row of the whole transcript maps to (entry, line) by bisection."""

    def __init__(self, sanitiser: Sanitiser, keys: dict[str, str], renderer: Renderer | None = None) -> None:
        self._kept: OrderedDict[int, Entry] = OrderedDict()  # entries holding rendered lines, oldest first
        self._s = sanitiser
        self.keys = keys
        self.r = renderer or Renderer()
        self.entries: list[Entry] = []
        self.by_key: dict[str, Entry] = {}
        self.width = 80
        self._tops: list[int] = [0]  # _tops[i]: first row of entries[i]; _tops[-1]: the height
        self._valid = 0  # _tops[:_valid + 1] are right

    # -- structure
    def _ordered(self, blocks: list[Block]) -> list[Entry]:
        out: list[Entry] = []
        turn_at: dict[str | None, int] = {}
        for b in blocks:
            e = make_entry(b, self._s, self.keys)
            self.by_key[b.key] = e
            if b.kind != "turn" and b.turn_id in turn_at:  # keep the turn's status line after its content
                out.insert(turn_at[b.turn_id], e)
                turn_at = {t: (p + 1 if p >= turn_at[b.turn_id] else p) for t, p in turn_at.items()}
            else:
                if b.kind == "turn":
                    turn_at[b.turn_id] = len(out)
                out.append(e)
        return out

    def extend(self, blocks: list[Block]) -> list[Entry]:
        self._dirty(len(self.entries))
        new = self._ordered(blocks)
        self.entries += new
        return new

    def prepend(self, blocks: list[Block]) -> int:
        """Older blocks above; returns the rows they add (at the current width). Only the new
        blocks are measured: the rows below move by as much (paging up through a session of
        10,000 messages never measures them all again)."""
        self._measure()
        new = self._ordered(blocks)
        heights = [self._height(e) for e in new]
        added = sum(heights)
        self.entries[:0] = new
        self._tops = list(accumulate(heights, initial=0)) + [y + added for y in self._tops[1:]]
        self._valid = len(self.entries)
        return added

    def add(self, block: Block) -> Entry:
        """A new block: before its turn's status line when that is shown."""
        e = self.by_key.get(block.key)
        if e is not None:
            return e
        e = make_entry(block, self._s, self.keys)
        self.by_key[block.key] = e
        at = len(self.entries)
        if block.kind != "turn":
            turn = self.by_key.get(f"turn:{block.turn_id}")
            if turn is not None:
                at = self.index(turn)
        self.entries.insert(at, e)
        self._dirty(at)
        return e

    def index(self, e: Entry) -> int:
        # the newest entries change most: search from the end
        for i in range(len(self.entries) - 1, -1, -1):
            if self.entries[i] is e:
                return i
        raise ValueError(e)

    def changed(self, e: Entry) -> None:
        """`e`'s lines changed (its text, state, or collapsed)."""
        e.invalidate()
        self._dirty(self.index(e))

    def _dirty(self, i: int) -> None:
        self._valid = min(self._valid, i)

    def set_width(self, width: int) -> None:
        if width != self.width:
            self.width = width
            self._valid = 0

    def restyle(self, renderer: Renderer) -> None:
        """A new theme: everything renders again."""
        self.r = renderer
        for e in self.entries:
            e.invalidate()
            if isinstance(e, AssistantEntry):
                for p in e.parts:
                    p._cache = {}
                e._relayout()
        self._valid = 0

    # -- rows
    def _measure(self) -> None:
        n = len(self.entries)
        if self._valid >= n and len(self._tops) == n + 1:
            return
        v = min(self._valid, n, len(self._tops) - 1)
        heights = [self._height(e) for e in self.entries[v:]]
        self._tops[v:] = accumulate(heights, initial=self._tops[v])
        self._tops = self._tops[:n + 1]
        self._valid = n

    @property
    def height(self) -> int:
        self._measure()
        return self._tops[-1]

    def top(self, e: Entry) -> int:
        self._measure()
        return self._tops[self.index(e)]

    def span(self, e: Entry) -> tuple[int, int]:
        """`e`'s first row and the row after it."""
        self._measure()
        i = self.index(e)
        return self._tops[i], self._tops[i + 1]

    def spans(self) -> list[tuple[Entry, int, int]]:
        """Each entry with its first row and the row after it."""
        self._measure()
        return [(e, self._tops[i], self._tops[i + 1]) for i, e in enumerate(self.entries)]

    def at(self, y: int) -> tuple[Entry, int] | None:
        """The entry at row `y` and the row within it (-1 and below: its margin above)."""
        self._measure()
        if y < 0 or y >= self._tops[-1]:
            return None
        i = bisect.bisect_right(self._tops, y) - 1
        e = self.entries[i]
        margin = MARGIN[e.kind] if self._tops[i + 1] > self._tops[i] else 0
        return e, y - self._tops[i] - margin

    def _height(self, e: Entry) -> int:
        h = e.height(self.r, self.width)
        self._touch(e)
        return h

    def _touch(self, e: Entry) -> None:
        """`e` holds rendered lines and was just used: only the KEEP_RENDERED used last keep
        theirs (a session paged through whole would otherwise keep every line of it: memory,
        and Python's full collections walking them)."""
        k = id(e)
        if k in self._kept:
            self._kept.move_to_end(k)
            return
        self._kept[k] = e
        while len(self._kept) > KEEP_RENDERED:
            self._kept.popitem(last=False)[1].drop()

    def line(self, e: Entry, i: int) -> Line:
        """Line `i` of `e`'s content."""
        self._touch(e)
        return e.line(self.r, self.width, i)

    def row(self, y: int) -> tuple[Entry | None, Line]:
        """Row `y`'s entry and content (an empty line in a margin or past the end)."""
        got = self.at(y)
        if got is None:
            return None, []
        e, i = got
        if i < 0:
            return e, []
        return e, self.line(e, i)

    def text_rows(self, start: int = 0, end: int | None = None) -> list[str]:
        """The rows as plain text (tests, copy of a region)."""
        end = self.height if end is None else end
        return ["".join(s.text for s in self.row(y)[1]) for y in range(start, end)]


def theme_styles(variables: dict[str, str]) -> Theme:
    """The transcript's styles from a Textual theme's CSS variables (`$text-muted`, …)."""
    def v(name: str, fallback: str) -> str:
        return variables.get(name) or fallback

    muted = v("text-muted", "grey62")
    return Theme({
        "lap.user": Style(),
        "lap.warning": Style.parse(v("text-warning", "yellow")),
        "lap.tool.title": Style(),
        "lap.tool.command": Style(bold=True),
        "lap.tool.output": Style.parse(muted) if " " not in muted else Style(dim=True),
        "lap.turn": Style.parse(muted) if " " not in muted else Style(dim=True),
        "lap.turn.failed": Style.parse(v("text-error", "red")),
        "lap.turn.active": Style.parse(v("text-accent", "cyan")),
    })
