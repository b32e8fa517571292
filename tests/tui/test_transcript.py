"""The virtual transcript (issue 14): the block model rendered once per width into rows, and the
line-API view that draws only the rows on screen."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from lap_tui.domain.text import Sanitiser
from lap_tui.tui.chat_model import Block, Change, ChatModel
from lap_tui.tui.transcript_model import MAX_TAIL, AssistantEntry, Renderer, Transcript
from lap_tui.tui.widgets.transcript import TranscriptView
from tests.tui.conftest import wait_for


def turn(tid: str, status: str = "completed", **kw) -> Block:
    return Block(key=f"turn:{tid}", kind="turn", turn_id=tid, status=status, **kw)


def user(n: int, text: str, tid: str = "t") -> Block:
    return Block(key=f"user:{n}", kind="user", turn_id=tid, text=text)


def reply(n: int, text: str = "", tid: str = "t", streaming: bool = False) -> Block:
    return Block(key=f"assistant:{n}", kind="assistant", turn_id=tid, text=text, streaming=streaming)


def tool(cid: str, tid: str = "t", **kw) -> Block:
    return Block(key=f"tool:{cid}", kind="tool", turn_id=tid, name="bash", arguments='{"command": "ls -la"}',
                 state="finished", exit_code=0, output="a\nb\nc", **kw)


class Counting(Renderer):
    def __init__(self) -> None:
        super().__init__()
        self.md: list[str] = []
        self.plain_chars = 0

    def markdown(self, text, width):
        self.md.append(text)
        return super().markdown(text, width)

    def plain(self, text, width, style=""):
        self.plain_chars += len(text)
        return super().plain(text, width, style)


def feed(t: Transcript, e: AssistantEntry, text: str, size: int = 7, flush_every: int = 50) -> None:
    for n, i in enumerate(range(0, len(text), size)):
        e.append(text[i:i + size], i + len(text[i:i + size]))
        if n % flush_every == 0:
            e.flush()
            t.changed(e)
            t.height  # the view measures on every frame
    e.flush()
    t.changed(e)


def test_turn_line_stays_after_its_content() -> None:
    t = Transcript(Sanitiser(), {})
    t.extend([turn("a", "running"), user(1, "hi", "a"), reply(1, "yo", "a"), turn("b", "queued"), user(2, "q", "b")])
    t.add(tool("c1", "a"))
    assert [e.block.key for e in t.entries] == ["user:1", "assistant:1", "tool:c1", "turn:a", "user:2", "turn:b"]


def test_finished_blocks_become_markdown_while_streaming_each_rendered_once() -> None:
    r = Counting()
    t = Transcript(Sanitiser(), {}, r)
    t.width = 60
    e = t.add(reply(1, streaming=True))
    assert isinstance(e, AssistantEntry)
    paragraphs = [f"Paragraph {i} has **bold** words.\n\n" for i in range(40)]
    feed(t, e, "".join(paragraphs) + "still *open*")
    rows = t.text_rows()
    assert any("Paragraph 3 has bold words." in row for row in rows)  # Markdown: no asterisks
    assert "still *open*" in rows[-1]  # the open paragraph as plain text as it grows
    # each finished block parsed once (with the others finished in the same flush), never again
    assert sorted(p for text in r.md for p in text.split("\n\n") if p) == sorted(p.strip() for p in paragraphs)
    e.finish()
    t.changed(e)
    assert "still open" in t.text_rows()[-1]


def test_one_long_paragraph_streams_in_pieces_that_wrap_as_one_text() -> None:
    r = Counting()
    t = Transcript(Sanitiser(), {}, r)
    t.width = 50
    e = t.add(reply(1, streaming=True))
    words = " ".join(f"w{i % 97}x" for i in range(6000))
    feed(t, e, words, size=13, flush_every=20)
    assert len(e._tail) < MAX_TAIL  # only the open tail renders again on a flush
    whole = [("".join(s.text for s in line)).rstrip() for line in r.plain(words, e.content_width(50))]
    assert [row.rstrip() for row in t.text_rows(1)] == whole
    # the cost is linear in the text: every character rendered a bounded number of times
    assert r.plain_chars < 2 * len(words) + 200 * MAX_TAIL


def test_untrusted_text_is_neither_markup_nor_terminal_bytes() -> None:
    t = Transcript(Sanitiser(), {})
    evil = "[bold red]x[/] \x1b]52;c;QUJD\x07 \x1b[2J [click](http://evil.example) `\x1b[31m`"
    t.extend([user(1, evil), reply(1, evil)])
    rows = t.text_rows()
    assert "[bold red]x[/]" in rows[1] and "[bold red]x[/]" in "".join(rows[2:])
    for y in range(t.height):
        for seg in t.row(y)[1]:
            assert "\x1b" not in seg.text and "\x07" not in seg.text
            assert seg.style is None or not seg.style.link  # a model's URL is never a hyperlink


def test_tool_call_lines_replace_in_place_when_expanded() -> None:
    t = Transcript(Sanitiser(), {})
    t.extend([user(1, "run it"), tool("c1"), turn("t", prompt_tokens=1200, completion_tokens=30, cost_usd=0.0123)])
    before = t.text_rows()
    e = t.by_key["tool:c1"]
    assert before[2].startswith("▶ ✓ bash ls -la · exit 0")
    e.collapsed = False
    t.changed(e)
    after = t.text_rows()
    assert after[2].startswith("▼ ✓ bash ls -la") and after[3].startswith("$ ls -la")
    assert [row.strip() for row in after[4:7]] == ["a", "b", "c"]
    assert "done" in after[-1] and "1.2k in / 30 out" in after[-1] and "$0.01" in after[-1]
    assert t.height == len(before) + 4


def test_rows_map_to_entries_through_margins_and_a_width_change() -> None:
    t = Transcript(Sanitiser(), {})
    t.extend([user(1, "one"), reply(1, "two " * 30), turn("t")])
    rows = t.text_rows()
    assert rows[0] == "" and rows[1].startswith("one") and rows[2] == ""
    assert t.at(0)[1] == -1 and t.at(1) == (t.entries[0], 0)
    tall = t.height
    t.set_width(30)
    assert t.height > tall  # the reply wraps again at the new width
    assert t.prepend([user(0, "older", "s"), turn("s")]) == 3
    whole = Transcript(Sanitiser(), {})
    whole.set_width(30)
    whole.extend([user(0, "older", "s"), turn("s"), user(1, "one"), reply(1, "two " * 30), turn("t")])
    assert t.text_rows() == whole.text_rows() and t.at(4) == (t.entries[2], 0)  # rows below moved down


def test_history_replayed_through_the_chat_model() -> None:
    """What the journal folds into (ChatModel) shows through the transcript whole."""
    from lap_tui.domain.journal import EventKind, JournalEvent

    m = ChatModel()
    evs = [(EventKind.TURN_QUEUED, {}), (EventKind.USER_MESSAGE, {"text": "list"}), (EventKind.TURN_STARTED, {}),
           (EventKind.MODEL_MESSAGE, {"text": "Done: **3** files", "usage": {"prompt_tokens": 5}})]
    for i, (k, d) in enumerate(evs):
        m.apply(JournalEvent(seq=i + 1, session_id="s", turn_id="t", kind=k, data=d, at=0.0))
    t = Transcript(Sanitiser(), {})
    t.extend(m.blocks)
    assert [r.strip() for r in t.text_rows() if r.strip()][:2] == ["list", "Done: 3 files"]


async def streaming_reply(view: TranscriptView):
    """A user message and a reply still streaming; returns `say(text)`, which streams more."""
    block = reply(1, tid="z", streaming=True)
    await view.show([user(1, "go", "z"), block])

    async def say(text: str) -> None:
        block.text += text
        await view.apply([Change("append", block, text, len(block.text))])
    return say


async def lines_shown(pilot, view: TranscriptView, say, n: int) -> None:
    """`n` paragraphs ("line 0" ...) streamed, flushed onto the view and laid out."""
    await say("".join(f"line {i}\n\n" for i in range(n)))
    await wait_for(pilot, lambda: f"line {n - 1}" in "".join(view.transcript.text_rows()), what="flushed")
    await pilot.pause()


class ViewApp(App):
    def compose(self) -> ComposeResult:
        yield TranscriptView(Sanitiser(), {})


def top_row(view: TranscriptView) -> str:
    return view.transcript.text_rows(round(view.scroll_y), round(view.scroll_y) + 1)[0]


@pytest.mark.asyncio
async def test_view_follows_the_tail_only_at_the_bottom_and_holds_the_reading_position() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(TranscriptView)
        history = [b for i in range(12) for b in (user(i, f"question {i}", f"t{i}"), turn(f"t{i}"))]
        await view.show(history + [tool("c1", "t11"), user(99, "go", "z"), reply(99, tid="z", streaming=True)])
        block = view.transcript.by_key["assistant:99"].block

        async def say(text: str) -> None:
            block.text += text
            await view.apply([Change("append", block, text, len(block.text))])
        for i in range(30):
            await say(f"line {i}\n\n")
        await wait_for(pilot, lambda: "line 29" in "".join(view.transcript.text_rows()), what="flushed")
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y and view.following  # followed the tail
        view.scroll_to(y=10, animate=False, immediate=True)
        await pilot.pause()
        reading = top_row(view)
        for i in range(30, 60):
            await say(f"line {i}\n\n")
        await wait_for(pilot, lambda: "line 59" in "".join(view.transcript.text_rows()), what="flushed")
        assert not view.following and top_row(view) == reading  # new text below: the view stays
        # something above the view grows (a tool call expanded): the text being read stays put
        view.scroll_to(y=view.transcript.top(view.transcript.by_key["user:99"]), animate=False, immediate=True)
        await pilot.pause()
        reading = top_row(view)
        view.toggle(view.transcript.by_key["tool:c1"])
        await pilot.pause()
        assert top_row(view) == reading
        # an older page above keeps the view where it was
        await view.prepend([user(-1, "oldest", "t-1"), turn("t-1")], has_older=False)
        await pilot.pause()
        assert top_row(view) == reading
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        await say("the end")
        await wait_for(pilot, lambda: "the end" in "".join(view.transcript.text_rows()), what="flushed")
        assert view.scroll_y == view.max_scroll_y  # at the bottom again: follows again


@pytest.mark.asyncio
async def test_view_selects_copies_and_expands_by_key_and_click() -> None:
    app = ViewApp()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        await view.show([user(1, "show me"), reply(1, "Here:\n\n```sh\nls -la\n```\n"), tool("c1"), turn("t")])
        view.focus()
        await pilot.pause()
        assert view.selected is view.transcript.by_key["tool:c1"]  # the last message
        height = view.transcript.height
        await pilot.press("enter")
        assert view.transcript.height == height + 4  # expanded in place
        await pilot.press("up")
        await pilot.press("y")
        assert copied == ["ls -la\n"]
        await pilot.press("c")
        assert copied[-1] == "Here:\n\n```sh\nls -la\n```\n"
        row = view.transcript.top(view.transcript.by_key["tool:c1"]) - round(view.scroll_y)
        await pilot.click(TranscriptView, offset=(6, row))
        assert view.transcript.height == height and view.selected is view.transcript.by_key["tool:c1"]


@pytest.mark.asyncio
async def test_reading_the_middle_of_a_streaming_reply_it_grows_below_and_nothing_moves() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(TranscriptView)
        say = await streaming_reply(view)
        await lines_shown(pilot, view, say, 40)  # laid out: the scrollbar is there to scroll with
        view.scroll_to(y=21, animate=False, immediate=True)  # inside the reply, which started above
        await pilot.pause()
        reading = top_row(view)
        assert "line" in reading and not view.following
        await say("".join(f"more {i}\n\n" for i in range(20)))
        await wait_for(pilot, lambda: "more 19" in "".join(view.transcript.text_rows()), what="flushed")
        await pilot.pause()
        assert top_row(view) == reading and round(view.scroll_y) == 21


def test_only_the_blocks_used_last_keep_their_lines_and_the_rest_render_again_when_read() -> None:
    from lap_tui.tui.transcript_model import KEEP_RENDERED

    t = Transcript(Sanitiser(), {})
    blocks = [b for i in range(KEEP_RENDERED) for b in (user(i, f"q{i}", f"t{i}"), reply(i, f"**a{i}**\n\n- x", f"t{i}"),
                                                       turn(f"t{i}"))]
    t.extend(blocks)
    first = t.text_rows()  # measured and read, every block rendered once
    held = [e for e in t.entries if e._lines is not None or any(p._cache for p in getattr(e, "parts", []))]
    assert len(held) <= KEEP_RENDERED < len(t.entries)
    assert t.text_rows() == first  # what was let go renders again, the same
    whole = Transcript(Sanitiser(), {})
    whole.extend(blocks[-30:])
    assert t.text_rows(t.height - whole.height) == whole.text_rows()


def test_markdown_with_one_shared_parser_renders_as_rich_s_own() -> None:
    from rich.markdown import Markdown

    from lap_tui.tui.transcript_model import SharedParserMarkdown

    r = Renderer()
    text = ("# Title\n\nSome **bold**, ~~struck~~ and `code` with a https://example.com link.\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n```python\nx = 1\n```\n\n> quoted")
    for md in (text, "plain", text[::-1]):  # the parser is reused: each text as if parsed alone
        ours = r.lines(SharedParserMarkdown(md, code_theme="monokai", hyperlinks=False), 60)
        rich_s = r.lines(Markdown(md, code_theme="monokai", hyperlinks=False), 60)
        assert ours == rich_s
    assert SharedParserMarkdown._parser is not None


def _cells(strips) -> list[list[tuple[str, object, object, bool]]]:
    """What a terminal shows of strips: each cell's character, colours and reverse flag."""
    out = []
    for strip in strips:
        row = []
        for seg in strip:
            st = seg.style
            row += [(ch, st.color if st else None, st.bgcolor if st else None, bool(st and st.reverse))
                    for ch in seg.text]
        out.append(row)
    return out


@pytest.mark.asyncio
async def test_streamed_text_lays_out_nothing_and_draws_as_textual_s_own_path() -> None:
    """A streamed line changes the virtual height without a layout of the screen (that cost a
    reflow and a second frame for the scrollbar on every tick), the scrollbar keeps up in the
    same frame, and the rows and the bar drawn straight into strips are what Textual's styles
    cache and ScrollBar draw."""
    from textual.scroll_view import ScrollView
    from textual.scrollbar import ScrollBar

    app = ViewApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(TranscriptView)
        say = await streaming_reply(view)
        await lines_shown(pilot, view, say, 30)
        assert view.show_vertical_scrollbar
        screen = app.screen
        layouts = []
        original = screen._refresh_layout
        screen._refresh_layout = lambda *a, **k: (layouts.append(1), original(*a, **k))[1]  # type: ignore[method-assign]
        for i in range(30, 45):
            await say(f"line {i}\n\n")
            await wait_for(pilot, lambda i=i: f"line {i}" in "".join(view.transcript.text_rows()), what="flushed")
            await pilot.pause()
            bar = view.vertical_scrollbar
            assert view.virtual_size.height == view.transcript.height == bar.window_virtual_size
            assert view.scroll_y == view.max_scroll_y and bar.position == view.scroll_y  # follows, bar at the end
        assert layouts == []
        crop = view.size.region
        for y in (0, 7, round(view.max_scroll_y)):
            view.scroll_to(y=y, animate=False, immediate=True)
            await pilot.pause()
            view._styles_cache.clear()
            w = view.scrollable_content_region.width  # the last column is the scrollbar's
            assert [r[:w] for r in _cells(view.render_lines(crop))] == \
                [r[:w] for r in _cells(ScrollView.render_lines(view, crop))]
            bar = view.vertical_scrollbar
            bar._styles_cache.clear()
            assert _cells(bar.render_lines(bar.size.region)) == _cells(ScrollBar.render_lines(bar, bar.size.region))


@pytest.mark.asyncio
async def test_a_tick_that_only_grows_a_line_redraws_only_that_row() -> None:
    """At a model's pace most ticks add a few words to the last line: only the rows whose line
    changed are redrawn (the whole view went to the terminal every tick), and they show it."""
    from textual.geometry import Region

    app = ViewApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(TranscriptView)
        say = await streaming_reply(view)

        await say("".join(f"line {i}\n\n" for i in range(30)) + "the last")
        await wait_for(pilot, lambda: "the last" in "".join(view.transcript.text_rows()), what="flushed")
        await pilot.pause()
        refreshed: list[tuple] = []
        original = view.refresh
        view.refresh = lambda *regions, **kw: (refreshed.append(regions), original(*regions, **kw))[1]  # type: ignore
        await say(" words")
        await wait_for(pilot, lambda: "the last words" in "".join(view.transcript.text_rows()), what="flushed")
        await pilot.pause()
        row = view.transcript.height - 1 - round(view.scroll_y)
        assert refreshed == [(Region(0, row, view.size.width, 1),)]
        shown = "".join(seg.text for seg in view.render_line(row))
        assert "the last words" in shown
        refreshed.clear()
        await say(" and a new line\n\nbelow")  # a new row: the view moves, all of it is drawn
        await wait_for(pilot, lambda: "below" in "".join(view.transcript.text_rows()), what="flushed")
        assert () in refreshed
