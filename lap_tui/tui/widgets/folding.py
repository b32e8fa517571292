"""Folding: finished runs of a long reply far from the viewport give up their widgets.

Textual keeps 30-40 KB per widget (styles, caches, a message pump) and the rendered lines of
each; a 20,000-word reply as Markdown is ~200 block widgets and ~15 MB (measured), and every
block widget is arranged again whenever its container changes. A *run* (a finished stretch of
a reply: one Markdown widget, or the plain pieces waiting to become one) that lies more than
FOLD_AWAY viewport heights from what is shown is replaced by a `Folded` placeholder of exactly
the height it took, which keeps only the run's text. It unfolds when it comes within
UNFOLD_NEAR viewport heights, so it is back before it is seen. On a width change a folded
run's height is worked out again from its text (exact for plain text, scaled for Markdown);
Markdown coming back stands in at that height until its own is known (see
AssistantMessage.settle), so an estimate never moves the text being read.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual._wrap import compute_wrap_offsets  # (private, pinned Textual: what Static wraps with)
from textual.geometry import Size
from textual.widget import Widget

FOLD_AWAY = 2  # viewport heights between a run and the viewport before the run folds
UNFOLD_NEAR = 1  # ... and within which a folded run unfolds (less than FOLD_AWAY: no flapping)


@dataclass(eq=False)
class Run:
    """A finished stretch of a reply and the widgets that show it now."""

    text: str  # cleaned text
    widgets: list[Widget]
    markdown: bool = False  # shown as one Markdown widget (else as plain pieces)
    kept_plain: bool = False  # never becomes Markdown (a huge paragraph without Markdown syntax)
    folded: Folded | None = None
    height: int = 0  # when folded: the height it took

    @property
    def waiting(self) -> bool:
        """Plain pieces that will become Markdown."""
        return not self.markdown and not self.kept_plain and self.folded is None


class Folded(Widget):
    """Blank lines standing in for a folded run."""

    DEFAULT_CSS = "Folded { height: 1; margin: 0; padding: 0; }"

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.styles.height = run.height

    def render(self) -> str:
        return ""


def plain_height(text: str, width: int) -> int:
    """The lines `text` takes as plain text wrapped at `width` (what a `_Piece` shows)."""
    if width <= 0:
        return 0
    return sum(len(compute_wrap_offsets(line, width, 8)) + 1 for line in text.rstrip("\n").split("\n"))


@dataclass
class Span:
    """Where a child sits in its vertical container, in the container's content lines: folding
    children start..end into one margin-less placeholder of height end - start leaves every other
    child where it was (Textual's vertical layout collapses adjacent margins to the larger)."""

    start: int  # just after the previous child's bottom margin (0 for the first)
    end: int  # where the next child's top margin begins (after this one's own bottom margin if last)


def spans(container: Widget) -> dict[Widget, Span]:
    """The spans of `container`'s displayed children, from its (cached) arrangement."""
    placements = [p for p in container.arrange(container.content_size).placements if not p.overlay]
    out: dict[Widget, Span] = {}
    for i, p in enumerate(placements):
        prev = placements[i - 1] if i else None
        nxt = placements[i + 1] if i + 1 < len(placements) else None
        start = prev.region.bottom + prev.margin.bottom if prev is not None else 0
        end = nxt.region.y - nxt.margin.top if nxt is not None else p.region.bottom + p.margin.bottom
        out[p.widget] = Span(start, end)
    return out


def content_tops(container: Widget, size: Size | None = None) -> dict[Widget, int]:
    """Where each child's content begins, in `container`'s content lines. `size`: what the
    container arranges its children in (its content size; less its scrollbars if it scrolls)."""
    return {p.widget: p.region.y + p.widget.styles.gutter.top
            for p in container.arrange(size or container.content_size).placements}
