"""KeptRows: Textual's per-widget line cache, giving back the rows it last returned when none is dirty.

A compositor pass asks every widget under its update region for all its rows, changed or not (the region
spans the screen when two far-apart panels change), and a widget with no dirty row paid its whole per-call
cost again (background colours up the DOM, the title's style, a line filter per row) for the same rows:
~50 µs each, twenty widgets a pass on the detail screen. Those rows are the ones Textual would draw: its
own line cache holds no dirty row either, and anything else that changes them clears the cache or marks
rows dirty (a style change, a full refresh and a resize clear it; the crop and the line filters are compared).
"""

from __future__ import annotations

from textual._styles_cache import StylesCache
from textual.containers import Grid, Vertical
from textual.reactive import Reactive
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static


class KeptRows(StylesCache):
    """Textual's per-widget line cache that keeps the rows it last returned (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._kept: tuple | None = None  # (crop, line filters, the rows render_widget returned)
        self.kept_renders = 0  # render_widget calls answered with the kept rows (the tests count them)

    def clear(self) -> None:
        super().clear()
        self._kept = None

    def render_widget(self, widget, crop) -> list[Strip]:
        filters = tuple(widget.get_line_filters())
        kept = self._kept
        if kept is not None and not self._dirty_lines and kept[0] == crop and kept[1] == filters and not widget.auto_links:
            self.kept_renders += 1
            return list(kept[2])
        strips = super().render_widget(widget, crop)
        self._kept = (crop, filters, strips)
        return strips


class KeepsRows(Widget):
    """Mixin, named after the Textual class (``class GpuPanel(Vertical, KeepsRows)``): the widget's line cache keeps
    the rows it last returned (KeptRows). For the panels, charts and figures (FramedWidget), and the containers and
    one-line Statics of the detail screen: a compositor pass asks each of them for its rows though none of their own
    rows changed (a chart inside did), and Textual's per-call cost was ~11 % of that screen's main thread. Last in the bases because Textual writes each Widget
    subclass's ``can_focus`` into the class itself: first, this mixin's (False) would hide a scroll view's."""

    LINE_CACHE: type[KeptRows] = KeptRows  # the cache's class (FramedWidget's also draws a changed row the short way)
    auto_links = Reactive(False)  # no links in these widgets: skips a per-row link restyle, and kept rows need none

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._styles_cache = self.LINE_CACHE()  # Textual 8.2.8 keeps a widget's line cache in ``_styles_cache``


class KeptVertical(Vertical, KeepsRows):
    pass


class KeptGrid(Grid, KeepsRows):
    pass


class KeptStatic(Static, KeepsRows):
    pass
