"""Pilot tests of fixed UI defects: overlays that keep the screen visible, esc out of the chat
draft, focus moving at once with ctrl+l, user themes from the config dir, the engine stub gone,
the Redactor's public secrets; and the streamed reply's plain pieces becoming Markdown."""

from __future__ import annotations

import sys

import pytest
from textual import events
from textual.widgets import TextArea

from lap_tui.domain.secrets import MASK, Redactor
from lap_tui.tui.app import LapApp
from lap_tui.tui.chat_model import Block
from lap_tui.tui.safety import Sanitiser
from lap_tui.tui.screens.agents import AgentsScreen
from lap_tui.tui.screens.chat import ChatScreen
from lap_tui.tui.screens.help import HelpScreen
from lap_tui.tui.transcript_model import MAX_TAIL, PLAIN_BIG, AssistantEntry, Transcript, seal_point
from lap_tui.tui.widgets.transcript import TranscriptView
from lap_tui.tui.widgets.command_line import CommandLine
from tests.tui.conftest import SESSION_ID, chat_open, seed, seed_basic, seed_chat, streaming_in_log, wait_for


async def started(app, pilot):
    await wait_for(pilot, lambda: app.store is not None and app.agents_cache and app.engine is not None,
                   what="start-up")


def visible_text(app) -> str:
    return app.export_screenshot()


async def test_command_line_and_help_overlay_the_screen(services_factory):
    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.pause(0.1)
        await pilot.press("colon")
        assert isinstance(app.screen, CommandLine)
        assert any(isinstance(s, AgentsScreen) for s in app._background_screens)
        assert "code-reviewer" in visible_text(app)  # the list stays visible behind the prompt
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert any(isinstance(s, AgentsScreen) for s in app._background_screens)
        assert "Agents" in visible_text(app).split("Keys (remap")[0].replace("&#160;", " ")


async def open_chat(services_factory):
    services = services_factory()
    seed(services, seed_chat)
    return LapApp(services, session=SESSION_ID)


async def test_esc_leaves_the_draft_so_colon_and_question_mark_work(services_factory):
    app = await open_chat(services_factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        chat = app.screen
        draft = chat.query_one("#draft", TextArea)
        await wait_for(pilot, lambda: draft.has_focus, what="draft focused")
        await pilot.press("colon")
        assert draft.text == ":" and app.screen is chat  # in the draft, : is text
        await pilot.press("backspace", "escape")
        assert app.screen is chat and not draft.has_focus and chat.query_one(TranscriptView).has_focus
        await pilot.press("colon")
        assert isinstance(app.screen, CommandLine)
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is chat and draft.text == ""
        await pilot.press("i")
        assert draft.has_focus


async def test_ctrl_l_then_a_key_at_once_never_reaches_the_draft(services_factory):
    app = await open_chat(services_factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        chat = app.screen
        draft = chat.query_one("#draft", TextArea)
        await wait_for(pilot, lambda: draft.has_focus, what="draft focused")
        # Both keys queued before either is handled: what a fast typist (or tmux) sends.
        app.post_message(events.Key("ctrl+l", None))
        app.post_message(events.Key("x", "x"))
        await wait_for(pilot, lambda: chat.query_one(TranscriptView).has_focus, what="the log focused")
        await pilot.pause()  # the x queued behind ctrl+l: forwarded by the app ...
        await pilot.pause()  # ... and handled by whichever widget it went to
        assert draft.text == ""
        app.post_message(events.Key("ctrl+l", None))
        app.post_message(events.Key("z", "z"))
        await wait_for(pilot, lambda: draft.text == "z", what=f"z in the draft (it holds {draft.text!r})")
        assert draft.has_focus


async def test_ctrl_l_as_soon_as_the_chat_opens_stays_on_the_log(services_factory, monkeypatch):
    """The chat focuses its draft when it mounts; a ctrl+l handled right after (a key typed
    while the chat opened: a fast typist, a burst from tmux, a loaded machine) must not have its
    focus taken back by that. The key is handled straight after on_mount here, before anything
    the mount deferred, which is where it lands when it waited in the queue."""
    mount = ChatScreen.on_mount

    def on_mount_then_ctrl_l(self) -> None:
        mount(self)
        self.action_focus_log()

    monkeypatch.setattr(ChatScreen, "on_mount", on_mount_then_ctrl_l)
    app = await open_chat(services_factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        for _ in range(3):  # anything the mount deferred runs now
            await pilot.pause()
        assert app.screen.query_one(TranscriptView).has_focus, app.screen.focused


async def test_the_keys_bar_follows_focus_and_read_only(services_factory):
    """The bottom line lists the focused widget's keys and the screen's, changes with focus, keeps
    the palette key at the right edge when narrow, and leaves out what --read-only refuses."""
    from lap_tui.tui.widgets.keys_bar import KeysBar

    app = await open_chat(services_factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        bar = app.screen.query_one(KeysBar)
        # The draft has the focus first (the chat's on_mount gives it at once: see the test above).
        draft = app.screen.query_one("#draft", TextArea)
        await wait_for(pilot, lambda: draft.has_focus and str(bar.render()).startswith("^j Send"),
                       what=f"draft focused, its keys: {bar.render()}")
        assert "c Copy" not in str(bar.render()) and str(bar.render()).rstrip().endswith("▏^p Palette")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: str(bar.render()).startswith("c Copy"), what=f"log keys: {bar.render()}")
        text = str(bar.render())
        assert len(text) == 80 and text.endswith("▏^p Palette") and "…" in text  # too long: cut, palette kept
    app = LapApp(services_factory(), session=SESSION_ID, read_only=True)  # the same data, seeded above
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: chat_open(app), what="chat")
        bar = app.screen.query_one(KeysBar)
        await wait_for(pilot, lambda: "^l Messages" in str(bar.render()), what="keys")
        assert not any(k in str(bar.render()) for k in ("Send", "Cancel", "Retry"))  # refused: not offered


async def test_user_themes_load_from_the_config_dir(services_factory, tmp_path, monkeypatch):
    cfg = tmp_path / "xdg-config"
    (cfg / "lap-tui" / "themes").mkdir(parents=True)
    (cfg / "lap-tui" / "themes" / "my-green.toml").write_text('primary = "#00aa00"\ndark = true\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert "my-green" in app.available_themes and "lap-dark" in app.available_themes
        app.choose_theme("my-green")
        assert app.theme == "my-green"


def test_the_engine_is_always_built(tmp_path, monkeypatch):
    """No engine-less stub: a broken engine import is an error the app shows, not a silent None."""
    import asyncio

    from lap_tui.config import load_settings
    from lap_tui.tui.launch import build_services
    from tests.tui.conftest import tui_environ

    services = build_services(load_settings(tui_environ(tmp_path), cwd=tmp_path))
    monkeypatch.setitem(sys.modules, "lap_tui.engine.services", None)  # import fails
    with pytest.raises(ImportError):
        asyncio.run(services.make_engine(None))


def test_redactor_secrets_are_public_and_read_only():
    r = Redactor(["short-secret", "a-much-longer-secret", "x"])
    assert r.secrets == ("a-much-longer-secret", "short-secret")
    with pytest.raises(AttributeError):
        r.secrets = ()  # type: ignore[misc]
    s = Sanitiser(r).stream()
    assert MASK in s.feed("key: short-se") + s.feed("cret done") + s.flush()


def test_pieces_cut_at_blank_lines_outside_code_fences():
    assert seal_point("a\n\nb", False) == 3
    assert seal_point("a\n\n", False) == 0  # what follows is not known yet
    assert seal_point("- item\n\n  its second paragraph", False) == 0  # may continue the list item
    assert seal_point("a\n\n```\ncode\n\nmore", False) == 3  # the later blank line is inside a fence
    assert seal_point("code\n\nstill code", True) == 0
    assert seal_point("end of code\n```\n\nafter", True) == len("end of code\n```\n\n")


def streaming_reply(width: int = 80) -> tuple[Transcript, Block, AssistantEntry]:
    """A streaming assistant step in a transcript of its own, fed and flushed by hand."""
    t = Transcript(Sanitiser(), {})
    t.set_width(width)
    block = Block(key="assistant:1", kind="assistant", turn_id="t", streaming=True)
    e = t.add(block)
    assert isinstance(e, AssistantEntry)
    return t, block, e


def feed(t: Transcript, block: Block, e: AssistantEntry, text: str, *, size: int, tick_every: int) -> None:
    """`text` arrives in chunks of `size`; the frame tick (a flush and a measure) runs every
    `tick_every` characters and at the end."""
    for i in range(0, len(text), size):
        block.text += text[i:i + size]
        e.append(text[i:i + size], len(block.text))
        if i % tick_every == 0:
            e.flush()
            t.changed(e)
            t.height
    e.flush()
    t.changed(e)


def test_a_streamed_reply_turns_into_markdown_block_by_block():
    """Only a small plain tail is rendered again per flush; finished blocks become Markdown while
    the reply still streams; the step's end makes the rest Markdown."""
    t, block, e = streaming_reply()
    words = "".join(f"**w{i}** " + ("\n\n" if i % 100 == 99 else "") for i in range(8000))
    feed(t, block, e, words[:len(words) // 2], size=50, tick_every=2000)
    assert len(e.parts) > 3 and all(p.markdown for p in e.parts)
    assert len(e._tail) < MAX_TAIL  # what a flush renders again stays small
    rows = t.text_rows()
    finished = rows[1:1 + e._tops[-1]]  # the rows above the open paragraph
    assert "w0 w1" in finished[0] and "**" not in "".join(finished) and "**" in "".join(rows)  # Markdown, not the source
    feed(t, block, e, words[len(words) // 2:], size=50, tick_every=2000)
    block.streaming = False
    e.finish()
    t.changed(e)
    assert all(p.markdown for p in e.parts) and not e._open and not e._tail
    assert "".join(p.text for p in e.parts) == words
    assert "**" not in "".join(t.text_rows()) and "w7999" in t.text_rows()[-1]


def test_a_huge_plain_paragraph_stays_plain_between_markdown_blocks():
    """A paragraph of PLAIN_BIG+ characters without Markdown syntax is kept plain (Markdown would
    show it the same, at a far higher cost); the blocks around it still become Markdown, and the
    reply reads in its order."""
    t, block, e = streaming_reply()
    big = " ".join(f"plain{i}" for i in range(PLAIN_BIG // 6))
    feed(t, block, e, "# Before\n\n" + big + "\n\n**After** it.\n\n", size=40, tick_every=4000)
    block.streaming = False
    e.finish()
    t.changed(e)
    kinds = [p.markdown for p in e.parts]
    assert kinds[0] and kinds[-1] and not any(kinds[1:-1]) and len(kinds) > 3, kinds  # its pieces kept
    assert e.parts[0].text.startswith("# Before") and e.parts[-1].text.startswith("**After**")
    assert "".join(p.text for p in e.parts[1:-1]).split() == big.split()
    rows = [r.strip() for r in t.text_rows() if r.strip()]
    assert rows[0] == "Before" and rows[-1] == "After it." and " ".join(rows[1:-1]).split() == big.split()


async def test_sandbox_filter_narrows_by_removing_rows_and_widens_in_order(services_factory):
    from lap_tui.tui.screens.sandboxes import SandboxesScreen
    from lap_tui.tui.widgets.table import LapTable
    from tests.tui.conftest import FakeSandboxBackend, seed_sandboxes

    services = services_factory(sandboxes=FakeSandboxBackend())

    async def many(store):
        await seed_sandboxes(store, n=40)

    seed(services, many)
    app = LapApp(services, view="sandboxes")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen)
                       and app.screen.query_one(LapTable).row_count == 40, what="sandboxes")
        table = app.screen.query_one(LapTable)
        order = [k.value for k in table.rows]
        await pilot.press("slash", *"suspend")
        await wait_for(pilot, lambda: table.row_count == 10, what="narrowed")
        assert all(table.get_cell(k, "phase") == "Suspended" for k in (r.value for r in table.rows))
        cleared: list[bool] = []
        clear = table.clear
        table.clear = lambda *a, **kw: cleared.append(True) or clear(*a, **kw)
        # "suspended no 3h 1": phase, ready, age and restarts: the suspended rows restarted 1, 13, 17 times.
        await pilot.press(*"ed no 3h 1")
        narrowed = {f"s-{i:012x}" for i in (1, 13, 17)}
        await wait_for(pilot, lambda: {k.value for k in table.rows} == narrowed,
                       what=f"narrowed again: {[k.value for k in table.rows]}")
        assert not cleared  # narrowing removed rows; it did not rebuild the table
        await pilot.press("escape")  # clears: every row again, in the original order
        await wait_for(pilot, lambda: table.row_count == 40, what="widened")
        assert [k.value for k in table.rows] == order


async def test_a_keypress_puts_the_stream_tick_off_briefly_never_twice(services_factory):
    """Right after a keypress the frame tick leaves the streamed text for KEY_DELAY (the key's frame
    then repaints only the draft); the text still arrives, and two ticks in a row are never put off."""
    import time

    from lap_tui.tui.chat_model import Change

    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        log, block, w = await streaming_in_log(app, pilot)
        log._ticker.pause()  # the test drives the tick

        async def arrive(text: str) -> None:
            block.text += text
            await log.apply([Change("append", block, text, len(block.text))])
            log._ticker.pause()

        await arrive("first words ")
        app.input_at = time.monotonic() + 3600  # a key "just now", however late the check below runs
        await log._flush_due()
        assert w._tail == ""  # put off: the key's frame comes first
        await wait_for(pilot, lambda: w._tail == "first words ", what="the put-off text")  # ... it follows
        await arrive("more ")
        app.input_at = time.monotonic() + 3600
        await log._flush_due()
        assert w._tail == "first words more "  # never put off twice in a row
