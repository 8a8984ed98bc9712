"""Repaints held while a widget is out of view, made when it comes back.

Textual keeps two maps of a screen: the widgets its last update showed, and (built on demand) all of them. A
refresh of a widget the last update did not show (a panel scrolled below the fold) throws the full map away
(`Compositor.update_widgets`: "any new widgets"), and the next region asked for, by any widget, arranges the
whole screen again: ~0.6 ms headless for the detail screen's 35 widgets, more in the real client. At 160x48 the
throttle timeline sits below the fold and slides every second or two, so the real client arranged the detail
screen every couple of seconds for a panel nobody saw (16 arrangements in 40 s, ~4 % of its main thread's
samples); at 80x24 most panels are below the fold.

So a widget that holds its repaints (``HoldsRepaints``) and is not in view only notes that it has some, and is
repainted whole when it is in view again: after any layout or scroll that shows it (Textual publishes the
screen's layout signal after both; that pass may still draw the kept lines, the next one, a few ms later,
draws today's), and, in a ``ViewScroll``, before the scroll's own pass, so the rows it exposes are never old.
Textual's ``Show`` is no help here: it is sent to widgets new in the layout, not to those scrolled to.

Asking is cheap here: a widget's screen is kept while its parent stays (Textual walks up the ancestors for
it, importing ``Screen`` each time, on every ``size`` and ``region`` read: ~9 % of the detail screen's main
thread before it was kept), and "in view" is a lookup in the widgets the screen's last update showed.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget

from tui.widgets.kept import KeepsRows


class HoldsRepaints(Widget):
    """Mixin: ``repaint`` holds this widget's repaints while its screen does not show it."""

    repaint_held = False  # a repaint was held: the kept lines (Textual's and ours) may be old
    border_held: dict[str, object] | None = None  # a border title / subtitle set out of view: set when it is seen
    _seen_on: tuple[object, Screen] | None = None  # (parent, screen) when the screen was last looked up

    @property
    def screen(self) -> Screen:
        seen = self._seen_on
        parent = self._parent
        if seen is not None and seen[0] is parent:
            return seen[1]
        screen = super().screen  # NoScreen when not mounted: nothing is kept then
        self._seen_on = (parent, screen)
        return screen

    def on_mount(self) -> None:
        # unsubscribed by Textual when the widget goes; immediate: the release's repaint joins the next pass
        self.screen.screen_layout_refresh_signal.subscribe(self, self._laid_out, immediate=True)

    def on_unmount(self) -> None:
        self._seen_on = None  # a removed widget keeps neither its parent nor its screen alive

    def _laid_out(self, _screen: object) -> None:
        if self.repaint_held and in_view(self):  # a resize, a panel above it gone, a scroll brought it back
            release(self)


def in_view(widget: Widget) -> bool:
    """Whether the widget is in the map of what its screen's last update showed: the first test of Textual's
    ``can_view_partial``, whose walk up the scrolling ancestors repeats what that map was built from (each
    widget in it overlaps its clip, the ancestors' regions cut to one another). It is also the test Textual's
    refresh makes before it throws the full map away; the map's one extra is a widget whose clip is an empty
    line at its edge."""
    return widget in widget.screen._compositor.visible_widgets


def repaint(widget: Widget, *regions: Region) -> None:
    """``widget.refresh(*regions)``; for a ``HoldsRepaints`` widget out of view, a note instead. A widget whose
    repaint was held and that is in view again is repainted whole (its other lines may be old too)."""
    if not isinstance(widget, HoldsRepaints):
        widget.refresh(*regions)
    elif not in_view(widget):
        widget.repaint_held = True
    elif widget.repaint_held:
        release(widget)
    else:
        widget.refresh(*regions)


def release(widget: HoldsRepaints) -> None:
    """Make a held repaint: the whole widget (Textual's kept lines are cleared with it), its held border text set."""
    if widget.repaint_held:
        widget.repaint_held = False
        held, widget.border_held = widget.border_held, None
        for name, text in (held or {}).items():
            setattr(widget, name, text)  # Textual's setter repaints the whole widget: the repaint this makes anyway
        widget.refresh()


def set_border(widget: Widget, name: str, text: object) -> None:
    """``widget.border_title = text`` (or ``border_subtitle``); out of view, for a ``HoldsRepaints`` widget, held like
    a repaint: Textual's setter repaints the whole widget, and out of view that arranged the whole screen again (the
    throttle timeline's "N ongoing" below the fold, every few seconds)."""
    if isinstance(widget, HoldsRepaints) and widget.is_mounted and not in_view(widget):
        widget.border_held = {**(widget.border_held or {}), name: text}
        widget.repaint_held = True
    else:
        if isinstance(widget, HoldsRepaints) and widget.border_held:
            widget.border_held.pop(name, None)  # an older held text must not overwrite this one at the release
        setattr(widget, name, text)


class ViewScroll(VerticalScroll, KeepsRows):
    """A VerticalScroll that makes its widgets' held repaints as it scrolls: before the scroll's pass, so the
    rows it brings into view are drawn from today's lines, not the ones kept from when they were last seen."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        if round(old_value) != round(new_value):
            for widget in self.walk_children(HoldsRepaints):
                release(widget)
        super().watch_scroll_y(old_value, new_value)
