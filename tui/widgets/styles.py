"""Component styles looked up once per theme: ``get_component_rich_style`` resolves CSS for every call
(about 2 ms each), and the detail screen's panels ask for a dozen of them on every frame."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widget import Widget

from tui.widgets.offview import repaint, set_border


class CachedComponentStyles(Widget):
    """Mixin for widgets that draw with component classes on every update."""

    def get_component_rich_style(self, *names: str, partial: bool = False, default: Style | None = None) -> Style:
        key = (self.app.theme, self.classes, names, partial, default)  # a class may restyle a component (-live, -failed)
        cache: dict = self.__dict__.setdefault("_component_style_cache", {})
        style = cache.get(key)
        if style is None:
            style = cache[key] = super().get_component_rich_style(*names, partial=partial, default=default)
        return style


def set_border_text(widget: Widget, *, title: str | Text | None = None, subtitle: str | Text | None = None) -> None:
    """Set a border title or subtitle only when it changes: Textual's setter repaints the whole widget
    whatever the value, and for a GPU panel that is every chart and figure inside it, once a frame.
    Out of view (a panel below the fold) it is held until the widget is seen (tui/widgets/offview.py)."""
    shown: dict = widget.__dict__.setdefault("_border_text_shown", {})
    if title is not None and shown.get("title") != title:
        shown["title"] = title
        set_border(widget, "border_title", title)
    if subtitle is not None and shown.get("subtitle") != subtitle:
        shown["subtitle"] = subtitle
        set_border(widget, "border_subtitle", subtitle)


def line_strip(segments: Iterable[Segment], width: int, base: Style | None, pad: Style | None) -> Strip:
    """``Strip(segments).apply_style(base)`` fitted to ``width`` cells (cut, or padded with ``pad``), built as one Strip:
    each Strip makes seven caches, and the three a line took (its segments, styled, padded) were most of what drawing a
    changed line cost — and the garbage collections those allocations set off."""
    segs = list(Segment.apply_style(segments, base))
    length = Segment.get_line_length(segs)
    if length > width:  # rare: a line wider than the widget
        return Strip(segs, length).crop(0, width)
    if length < width:
        segs.append(Segment(" " * (width - length), pad))
    return Strip(segs, width)


def text_segments(text: Text, console: Console, under: Style | None = None, memo: dict | None = None) -> list[Segment]:
    """``list(Segment.apply_style(text.render(console), under))`` for a line whose spans follow one another without
    overlapping — as appending styled pieces makes them, every line of a panel —, without Rich's span stack (a sort
    and a stack walk per line) and, with ``memo`` (a dict the caller keeps while ``under`` stays the same), without
    adding the same styles again for every piece of every line: together half of drawing a changed panel line.
    Any other line goes through Rich."""
    plain, spans = text.plain, text.spans
    if not spans:
        return [Segment(plain, under + None if under else None)]
    at = 0
    for span in spans:
        if span.start < at or span.end < span.start or span.end > len(plain):  # nested, out of order or past the end:
            return list(Segment.apply_style(text.render(console), under))  # Rich combines every span open
        at = span.end
    if memo is None:
        memo = {}
    elif len(memo) > 256:  # bounded: styles made afresh per frame (equal ones share a key) cannot pile up
        memo.clear()
    null = Style.null()
    base = memo.get((text.style,))
    if base is None:
        inner = console.get_style(text.style, default=null)
        base = memo[(text.style,)] = under + inner if under else inner
    out: list[Segment] = []
    at = 0
    for span in spans:
        if span.start > at:
            out.append(Segment(plain[at : span.start], base))
        if span.end > span.start:
            key = (text.style, span.style)
            style = memo.get(key)
            if style is None:
                inner = console.get_style(text.style, default=null) + console.get_style(span.style, default=null)
                style = memo[key] = under + inner if under else inner
            out.append(Segment(plain[span.start : span.end], style))
        at = span.end
    if at < len(plain):
        out.append(Segment(plain[at:], base))
    return out


def text_strip(text: Text, console: Console, width: int, style: VisualStyle, memo: dict | None = None) -> Strip:
    """A line of text drawn under a widget's own style, padded as Textual pads a line of content (never reversed);
    ``memo``: see ``text_segments``."""
    return line_strip(text_segments(text, console, style.rich_style, memo), width, None, (style + VisualStyle(reverse=False)).rich_style)


def repaint_changed(widget: Widget, old: Sequence[object], new: Sequence[object], strips: dict[int, Strip] | None = None) -> None:
    """Repaint the rows whose content differs between ``old`` and ``new`` (as many of each), dropping their kept
    strips: ``refresh()`` with no region would repaint the whole widget, border and all. Out of view, a widget
    that holds its repaints only notes them (tui/widgets/offview.py)."""
    changed = [y for y, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    if strips is not None:
        for y in changed:
            strips.pop(y, None)
    if changed:
        repaint(widget, *(Region(0, y, widget.size.width, 1) for y in changed))
