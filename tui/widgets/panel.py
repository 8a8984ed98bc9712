"""TextPanel: the base of the bordered panels that draw one Rich Text from their data.

``show(data)`` stores the data and rebuilds the text at the current width; the
screen is re-laid out only when the panel's height changes, so a 10 Hz agent
costs a repaint of the panel, not a layout of the whole screen, and a frame that changes
nothing the panel shows costs no repaint at all.

The panel draws itself line by line (Textual's line API): each wrapped line's Strip is kept
until that line changes. Textual's default ``render_line`` turns the whole Text into strips
again whenever any region is dirty, which was a fifth of the fleet overview's CPU; here a
frame that moves one GPU figure converts one line.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Span, Text
from textual.strip import Strip
from textual.style import Style as VisualStyle

from tui.widgets.framed import FramedWidget
from tui.widgets.styles import CachedComponentStyles, repaint_changed, text_strip


def split_lines(text: Text) -> list[Text]:
    """``text.split("\\n", allow_blank=True)``, the same lines and spans, in half the time: Rich's split goes
    through ``divide`` (a bisect per span over every piece, separators included), and splitting a card's text
    was a fifth of a card's rebuild with ten machines."""
    plain = text.plain
    if "\n" not in plain:
        return [text.copy()]
    starts = [0]
    at = plain.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = plain.find("\n", at + 1)
    ends = [s - 1 for s in starts[1:]] + [len(plain)]
    style, justify, overflow = text.style, text.justify, text.overflow
    lines = [Text(plain[a:b], style=style, justify=justify, overflow=overflow) for a, b in zip(starts, ends, strict=True)]
    count = len(lines)
    for span in text.spans:
        i = bisect_right(starts, span.start) - 1
        while i < count and starts[i] < span.end:
            a, b = max(span.start, starts[i]), min(span.end, ends[i])
            if b > a:  # Rich keeps no empty piece of a span
                lines[i].spans.append(Span(a - starts[i], b - starts[i], span.style))
            i += 1
    return lines


def wrap_lines(text: Text, console: Console, width: int, kept: dict | None = None) -> list[Text]:
    """``text`` as the lines a ``width``-wide panel shows, each without trailing spaces (Rich keeps the space at
    a wrap point, Textual's own render drops it: the same cells either way). Only lines that are too long go
    through Rich's wrap: a card's lines are built to fit, and wrapping them all was most of a rebuild.
    ``kept``: the wraps of the last call (the caller keeps the dict; it is left holding this call's), so a long
    line that did not change is not wrapped again every frame (a card's "no Docker engine socket at …" line)."""
    out: list[Text] = []
    wrapped: dict = {}
    for line in split_lines(text):
        if "\t" not in line.plain and cell_len(line.plain) <= width:
            line.rstrip()
            out.append(line)
            continue
        key = (line.plain, tuple(line.spans), line.style, width)
        lines = kept.get(key) if kept is not None else None
        if lines is None:
            lines = line.wrap(console, width)
            for part in lines:
                part.rstrip()
        wrapped[key] = lines
        out.extend(lines)
    if kept is not None:
        kept.clear()
        kept.update(wrapped)
    return out


class TextPanel(FramedWidget, CachedComponentStyles):
    DEFAULT_CSS = """
    TextPanel { height: auto; border: round $primary; padding: 0 1; }
    """
    TITLE = ""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.data: Any = None
        self._text = Text("no data", "dim")
        self._built_width = -1
        self._lines = 1
        self._wrapped: list[Text] = []  # the text as wrapped at _built_width, to find the lines that changed
        self._wraps: dict = {}  # the long lines' wraps of the last rebuild (see wrap_lines)
        self._strips: dict[int, Strip] = {}  # line -> its strip, dropped when the line or the panel's style changes
        self._strip_style: VisualStyle | None = None
        self._styles_memo: dict = {}  # the lines' styles under _strip_style (see text_segments)
        if self.TITLE:
            self.border_title = self.TITLE

    def show(self, data: Any) -> None:
        self.data = data
        self._rebuild()

    def _rebuild(self) -> None:
        width = max(1, self.content_size.width or self.size.width or 40)
        text = self.build(width) if self.data is not None else Text("no data", "dim")
        if width == self._built_width and text == self._text:  # same text (plain and spans), same width: nothing to repaint
            return
        same_width = width == self._built_width
        self._text = text
        self._built_width = width
        if not self.is_mounted:
            self._lines = self._text.plain.count("\n") + 1
            self._wrapped = []
            self.refresh()
            return
        wrapped = wrap_lines(self._text, self.app.console, width, self._wraps)
        old, self._wrapped = self._wrapped, wrapped
        if len(wrapped) != self._lines:  # a new height: the screen is laid out again
            self._lines = len(wrapped)
            self._strips.clear()
            # Textual keys the widget's box-model cache on this count, and counts a layout request only when none is
            # pending: a new height asked for while an earlier request waited was laid out at the height cached before
            self._layout_updates += 1
            self.refresh(layout=True)
        elif same_width and len(old) == len(wrapped):  # repaint only the lines that changed (a card's GPU line, not its border)
            repaint_changed(self, old, wrapped, self._strips)
        else:
            self._strips.clear()
            self.refresh()

    def get_content_height(self, container, viewport, width: int) -> int:
        """The lines drawn at the width the text was built for; at another width, what Textual measures of that
        text (a resize rebuilds it). Either way ``_lines`` is what the layout gave the panel, so a rebuild that
        draws another count lays the screen out again: a text built at one width and measured at another (a
        panel shown before its first layout, then a scroll bar taking two columns) kept the old height, rows
        left blank inside the border."""
        if width == self._built_width and self._wrapped:
            height = len(self._wrapped)
        else:
            height = super().get_content_height(container, viewport, width)
        self._lines = height
        return height

    def on_resize(self) -> None:
        if self.data is not None and self.content_size.width != self._built_width:
            self._rebuild()

    def build(self, width: int) -> Text:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def render(self) -> Text:
        return self._text

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._built_width or not self._wrapped:  # not wrapped at this width yet (before the first show, mid-resize)
            return super().render_line(y)
        style = self.visual_style
        if style is not self._strip_style:  # a class or theme change restyles every line
            self._strips.clear()
            self._styles_memo.clear()
            self._strip_style = style
        strip = self._strips.get(y)
        if strip is None:
            if y >= len(self._wrapped):
                return Strip.blank(width, style.rich_style)
            # Rich's own segments under the panel's style: what Visual.to_strips draws for a line that fits (the
            # snapshots compare it cell by cell), without a Content conversion and re-wrap per line, a third of the cost
            strip = self._strips[y] = text_strip(self._wrapped[y], self.app.console, width, style, self._styles_memo)
        return strip
