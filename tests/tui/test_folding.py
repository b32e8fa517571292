"""Folding (widgets/folding.py): the runs of a long reply far from the viewport keep only their
text, in a placeholder of exactly their height; they come back as they were before they are seen."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from lap_tui.tui.app import LapApp
from lap_tui.tui.chat_model import Block, Change
from lap_tui.tui.widgets.chat_messages import AssistantMessage, _Piece
from lap_tui.tui.widgets.folding import Folded, Run, content_tops, spans
from tests.tui.conftest import log_on_screen, seed, seed_basic, streaming_in_log, wait_for


class _Column(App):
    CSS = """
    .a { height: 3; margin: 1 0 2 0; } .b { height: 2; margin: 0; } .c { height: 4; margin: 3 0 1 0; }
    """

    def compose(self) -> ComposeResult:
        with Vertical(id="col"):
            for i, cls in enumerate("abcabcba"):
                yield Static(f"{i}", classes=cls, id=f"w{i}")


async def test_a_placeholder_of_the_span_height_moves_nothing():
    """Any stretch of children, whatever their collapsing margins, folds into a placeholder of
    end - start lines and every other child keeps its line."""
    app = _Column()
    async with app.run_test(size=(40, 60)) as pilot:
        col = app.query_one("#col")
        for first, last in [(0, 0), (1, 2), (3, 3), (2, 5), (6, 7), (0, 7)]:
            before = {c.id: c.region.y for c in col.children}
            total = col.arrange(col.content_size).total_region.height
            where = spans(col)
            kids = list(col.children)[first:last + 1]
            run = Run("x", kids)
            run.height = where[kids[-1]].end - where[kids[0]].start
            ph = Folded(run)
            await col.mount(ph, before=kids[0])
            for k in kids:
                k.display = False
            await pilot.pause()
            after = {c.id: c.region.y for c in col.children if c.display and c.id}
            assert after == {k: v for k, v in before.items() if k in after}, (first, last)
            assert col.arrange(col.content_size).total_region.height == total
            await ph.remove()
            for k in kids:
                k.display = True
            await pilot.pause()


async def test_a_long_reply_folds_far_from_the_view_and_unfolds_near_it(services_factory):
    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        log, block, w = await streaming_in_log(app, pilot)
        text = "".join(f"**p{i}** " + " ".join(f"w{i}.{j}" for j in range(40)) + "\n\n" for i in range(120))
        for i in range(0, len(text), 400):  # streams; the ChatLog's own 20 Hz tick renders it
            block.text += text[i:i + 400]
            await log.apply([Change("append", block, text[i:i + 400], len(block.text))])
            await pilot.pause(0.01)

        def folded() -> list[Run]:
            return [r for r in w._runs if r.folded is not None]

        await wait_for(pilot, lambda: len(folded()) > 3, what="runs folding while the reply streams")
        block.streaming = False
        await log.apply([Change("update", block)])
        await wait_for(pilot, lambda: not w._queue and not w.query(_Piece), what="the rest as Markdown")
        await pilot.pause(0.3)
        assert "".join(r.text for r in w._runs) == text  # every word kept, in order
        n_folded = len(folded())
        assert n_folded > len(w._runs) // 2
        assert len(list(w.query_one(".body").children)) == len(w._runs)  # one widget per run, no more
        height = log.virtual_size.height
        log.refold()
        await pilot.pause(0.1)
        assert log.virtual_size.height == height  # folding changes no line

        log.scroll_home(animate=False)  # the top comes back as Markdown; the end folds
        await wait_for(pilot, lambda: w._runs[0].folded is None and w._runs[-1].folded is not None,
                       what="unfold at the top, fold at the end")
        await wait_for(pilot, lambda: not w._settling, what="Markdown heights settled")
        first = w._runs[0].widgets[0]
        assert isinstance(first, Markdown) and first.source.startswith("**p0**")
        assert "p0" in app.export_screenshot()

        log.scroll_end(animate=False)
        await pilot.pause(0.3)
        assert "p119" in app.export_screenshot()
        height = log.virtual_size.height
        n_folded = len(folded())
        await pilot.resize_terminal(60, 24)  # folded runs stay folded, their heights worked out again
        await wait_for(pilot, lambda: log.virtual_size.height > height, what="re-wrapped at the narrower width")
        assert len(folded()) >= n_folded - 2 and "".join(r.text for r in w._runs) == text
        log.scroll_home(animate=False)
        await wait_for(pilot, lambda: w._runs[0].folded is None and not w._settling, what="the top back")
        await pilot.pause(0.2)
        assert "p0" in app.export_screenshot()


async def test_a_long_reply_from_history_mounts_in_runs_and_folds(services_factory):
    """Opened from history, a long reply is never one Markdown of every block: its runs become
    Markdown the newest first, the far ones fold, and each comes back when scrolled to."""
    services = services_factory()
    seed(services, seed_basic)
    app = LapApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        log = await log_on_screen(app, pilot)
        text = "".join(f"## Part {i}\n\n" + " ".join(f"w{i}.{j}" for j in range(60)) + "\n\n" for i in range(100))
        await log.show([Block(key="assistant:1", kind="assistant", turn_id="t", text=text)])
        w = log.query_one(AssistantMessage)
        assert len(w._runs) > 5 and "".join(r.text for r in w._runs) == text
        await wait_for(pilot, lambda: not w._queue and w._runs[0].folded is not None, what="conversions, folds")
        assert isinstance(w._runs[-1].widgets[0], Markdown)  # what is in view is Markdown
        assert len(w.query(Markdown)) < len(w._runs)

        def settled() -> bool:
            return not w._queue and not w._settling

        # Read in the middle: what turns into Markdown above the view does not move the text in it.
        log.scroll_to(y=log.max_scroll_y // 2, animate=False)
        await wait_for(pilot, settled, what="the middle settled")
        await pilot.pause(0.3)
        # Put the top of the view one line into the first shown run below a folded, never-converted
        # one: that one unfolds just above the view and becomes Markdown of another height.
        def candidate() -> int | None:
            return next((i for i, r in enumerate(w._runs) if i and r.folded is None and w._runs[i - 1].folded
                         is not None and not w._runs[i - 1].markdown), None)

        for _ in range(10):  # (what was converted before it folded depends on timing: look higher up)
            if candidate() is not None:
                break
            log.scroll_relative(y=-3 * log.size.height, animate=False)
            await wait_for(pilot, settled, what="settled higher up")
        k = candidate()
        assert k is not None
        body = w.query_one(".body")
        size = log.scrollable_content_region.size

        def line_of(run: Run) -> int:
            return content_tops(log, size)[w] + w.body_top() + spans(body)[run.widgets[0]].start

        log.scroll_to(y=line_of(w._runs[k]) + 1, animate=False)
        await wait_for(pilot, lambda: w._runs[k - 1].folded is None and settled(), what="the run above unfolded")
        await pilot.pause(0.3)
        assert w._runs[k - 1].markdown and w._runs[k].folded is None
        assert round(log.scroll_y) == line_of(w._runs[k]) + 1  # the text in view did not move

        log.scroll_home(animate=False)
        await wait_for(pilot, lambda: w._runs[0].folded is None, what="the top unfolds")
        await wait_for(pilot, lambda: settled() and isinstance(w._runs[0].widgets[0], Markdown),
                       what="the top as Markdown")
        await pilot.pause(0.3)
        assert "w0.1" in app.export_screenshot()
