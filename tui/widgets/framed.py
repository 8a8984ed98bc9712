"""FramedLines: Textual's per-widget line cache, with a short way to draw a changed content row.

Textual draws every changed row of a widget through ``StylesCache.render_line``, which reads the border,
padding, outline, hatch, tint and opacity from the styles and builds the row's edges again, for each row
and each frame: ~57 µs a row, four times what the panel's own line costs. A panel's content row is its
content between the same edges on every row (Textual's branch C: left border and padding, the line
fitted to the content width, padding and right border), so this cache takes those edges once from
Textual's own drawing of a probe row and reuses them until the styles cache is cleared (Textual clears
it on every style change, full refresh and resize) or the values passed in change. Rows that are
borders, padding or outlines, and widgets whose styles transform the content itself (tint, opacity,
text opacity, hatch), are drawn by Textual as before.

Like every KeptRows cache (tui/widgets/kept.py), it also gives back the rows it last returned when none is dirty.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from textual.strip import Strip

from tui.widgets.kept import KeepsRows, KeptRows
from tui.widgets.offview import HoldsRepaints

PROBE = "\x00"  # a cell no panel draws: the probe row's content, to find where Textual puts it


class FramedLines(KeptRows):
    def __init__(self) -> None:
        super().__init__()
        self._frame: tuple | None = None  # (what the edges were taken under, ((offset, top, bottom), prefix, suffix, inner) or None)
        self.fast_rows = 0  # rows drawn from the kept edges (the tests count them)

    def clear(self) -> None:
        super().clear()
        self._frame = None

    def render_line(  # the same arguments as StylesCache.render_line, passed on unchanged
        self,
        styles,
        y: int,
        size,
        content_size,
        padding,
        base_background,
        background,
        render_content_line: Callable[[int], Strip],
        border_title,
        border_subtitle,
        opacity: float,
        ansi_theme,
        native_ansi: bool,
    ) -> Strip:
        args = (size, content_size, padding, base_background, background, opacity, ansi_theme, native_ansi)
        frame = self._frame
        if frame is None or frame[0] != args:
            frame = self._frame = (args, self._edges(styles, *args))
        edges = frame[1]
        if edges is not None:
            (offset, top, bottom), prefix, suffix, inner = edges
            if top <= y < bottom:
                self.fast_rows += 1
                line = render_content_line(y - offset).adjust_cell_length(content_size.width, inner)
                return Strip([*prefix, *line, *suffix], size.width)
        return super().render_line(
            styles, y, size, content_size, padding, base_background, background,
            render_content_line, border_title, border_subtitle, opacity, ansi_theme, native_ansi,
        )  # fmt: skip

    def _edges(self, styles, size, content_size, padding, base_background, background, opacity, ansi_theme, native_ansi):
        """((the first content line's row, first, end rows drawn here), the segments before and after the content,
        the content's background style), or None when Textual's content row is more than content between edges."""
        if opacity != 1.0 or styles.text_opacity != 1.0 or styles.tint.a or (styles.has_rule("hatch") and styles.hatch != "none"):
            return None
        gutter = styles.gutter
        offset = top = gutter.top  # row y shows content line y - gutter.top (an outline covers rows, it moves none)
        bottom = min(size.height - gutter.bottom, offset + content_size.height)  # below the content: a blank row, Textual's own
        outline = styles.outline
        if outline.top[0]:  # an outline's top and bottom rows are drawn over the content
            top = max(top, 1)
        if outline.bottom[0]:
            bottom = min(bottom, size.height - 1)
        if top >= bottom or content_size.width <= 0:
            return None
        inner, _ = self.get_inner_outer(base_background, background)
        probe = Segment(PROBE * content_size.width)
        row = super().render_line(
            styles, top, size, content_size, padding, base_background, background,
            lambda _y: Strip([probe], content_size.width), None, None, opacity, ansi_theme, native_ansi,
        )  # fmt: skip
        segments = list(row)
        at = [i for i, segment in enumerate(segments) if PROBE in segment.text]
        if len(at) != 1 or segments[at[0]] != probe:  # cut, split or restyled: not plain content between edges
            return None
        return (offset, top, bottom), segments[: at[0]], segments[at[0] + 1 :], inner.rich_style


class FramedWidget(HoldsRepaints, KeepsRows):
    """A widget whose rows go through FramedLines (Textual 8.2.8 keeps a widget's line cache in ``_styles_cache``);
    out of view, its changed rows wait until it is seen (tui/widgets/offview.py)."""

    LINE_CACHE = FramedLines
