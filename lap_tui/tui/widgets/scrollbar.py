"""A vertical scrollbar drawn straight into strips, for views that redraw on every frame, and
the finishing of rows such widgets draw whole.

Textual's ScrollBar renders a Rich renderable through the console and the styles cache: for a
column one cell wide that was a fifth of the app's time while a reply streamed at 2,000
chunks/s (py-spy; the transcript moves, so the bar changes every frame). The bar drawn here is
Textual's own (`ScrollBarRender.render_bar`: the same glyphs, colours and mouse actions), only
the detour is gone; anything else (horizontal, a custom renderer) goes the usual way.
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget

_BACK = Color.parse("#555555")  # ScrollBarRender's defaults for a style without colours
_BAR = Color.parse("bright_magenta")


class LeanScrollBar(ScrollBar):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rows: dict[tuple, Strip] = {}

    def render_lines(self, crop: Region) -> list[Strip]:
        bar = self.render()
        if not self.vertical or type(bar) is not ScrollBarRender:
            return super().render_lines(crop)
        width, height = self.size
        style = bar.style
        segments = bar.render_bar(size=height, virtual_size=bar.virtual_size, window_size=bar.window_size,
                                  position=bar.position, thickness=width, vertical=True,
                                  back_color=style.bgcolor or _BACK, bar_color=style.color or _BAR)
        # A bar has at most four kinds of row (track above, thumb ends, thumb, track below), but
        # render_bar makes new styles each time: rows are kept by what they show, so the same
        # Strip comes back frame after frame and every cache keyed on it (filters, the
        # compositor's divisions, the driver's escape codes) hits.
        base = self.rich_style  # under the bar's own colours, as Textual's visual style is
        return finished(self, [self._row(segment, width, base) for segment in segments.segments[crop.y:crop.bottom]],
                        crop)


    def _row(self, segment: Segment, width: int, base: Style) -> Strip:
        st = segment.style
        key = (segment.text, width, base, st.color, st.bgcolor, st.reverse, st.meta.get("@mouse.down")) if st \
            else (segment.text, width, base)
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) > 16:  # a new theme or width: the old rows go
                self._rows.clear()
            row = self._rows[key] = Strip([Segment(segment.text, base + st)], width)
        return row


def finished(widget: Widget, rows: list[Strip], crop: Region) -> list[Strip]:
    """Rows a widget drew whole, as Textual's styles cache would finish them: the app's line
    filters (colour modes), then the columns asked for."""
    filters = widget.get_line_filters()
    if filters:
        background = widget.background_colors[1]
        for f in filters:
            rows = [row.apply_filter(f, background) for row in rows]
    x1, x2 = crop.column_span
    if rows and (x1 or x2 < rows[0].cell_length):
        rows = [row.crop(x1, x2) for row in rows]
    return rows


def lean_vertical_scrollbar(widget: Widget) -> ScrollBar:
    """What `Widget.vertical_scrollbar` makes, as a LeanScrollBar (Textual 8.2.8's steps)."""
    if widget._vertical_scrollbar is None:
        bar = widget._vertical_scrollbar = LeanScrollBar(vertical=True, name="vertical",
                                                         thickness=widget.scrollbar_size_vertical)
        bar.display = False
        widget.app._start_widget(widget, bar)
    return widget._vertical_scrollbar
