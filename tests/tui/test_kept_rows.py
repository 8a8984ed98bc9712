"""KeptRows (tui/widgets/kept.py): the detail screen's containers and one-line Statics give back the rows they last
returned when none is dirty — the rows Textual itself draws then, for any crop — and the mixin leaves the Textual
class it is added to as it was (focus above all: the detail's scroll view takes the arrows)."""

from __future__ import annotations

from rich.segment import Segment
from textual._styles_cache import StylesCache
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tests.helpers.tui import frames, open_detail
from tests.helpers.tui_fakes import app_for, spark_client
from tui.screens.machine import MachineScreen
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.history_charts import HostCharts
from tui.widgets.kept import KeepsRows, KeptGrid, KeptRows, KeptStatic, KeptVertical
from tui.widgets.offview import ViewScroll


def rows(strips) -> list:
    return [list(strip) for strip in strips]


def textual_rows(widget: Widget, crop: Region) -> list:
    """The rows as Textual 8.2.8's own line cache draws them, from scratch."""
    return rows(StylesCache().render_widget(widget, crop))


def test_the_mixin_keeps_the_textual_classes_focus_and_links_settings():
    classes: list[type[Widget]] = [KeptVertical, KeptGrid, KeptStatic, GpuPanel, HostCharts, ViewScroll, MachineScreen]
    for cls in classes:
        textual_base: type[Widget] = next(b for b in cls.__mro__ if b.__module__.startswith("textual."))
        assert cls.can_focus == textual_base.can_focus and cls.can_focus_children == textual_base.can_focus_children, cls
    assert ViewScroll.can_focus  # Textual writes can_focus into each Widget subclass: a mixin first in the bases hid it


async def test_containers_give_back_their_rows_between_frames_and_they_are_what_textual_draws():
    cl = spark_client()
    app = app_for([cl], "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        screen, scroll = await open_detail(app, pilot, cl)
        assert scroll.has_focus  # the arrows scroll the detail
        kept = [screen, *screen.walk_children(KeepsRows)]
        names = {type(w).__name__ for w in kept}
        assert {"MachineScreen", "ViewScroll", "GpuPanel", "HostCharts", "KeptVertical", "KeptGrid", "KeptStatic"} <= names
        assert all(isinstance(w._styles_cache, KeptRows) for w in kept)

        def kept_renders(widget: Widget) -> int:
            cache = widget._styles_cache
            assert isinstance(cache, KeptRows)
            return cache.kept_renders

        before = {w: kept_renders(w) for w in kept}
        await frames(app, pilot, cl, range(122, 126))  # new samples: charts inside the containers change, their own rows do not
        for cls in (MachineScreen, ViewScroll, GpuPanel, HostCharts):
            assert any(kept_renders(w) > before[w] for w in kept if isinstance(w, cls)), cls.__name__
        for widget in kept:
            if not widget.region.area:
                continue
            whole = Region(0, 0, *widget.region.size)
            top_half = Region(0, 0, widget.region.width, max(1, widget.region.height // 2))
            for crop in (whole, whole, top_half, whole):  # asked again (kept), another crop, back to the first
                assert rows(widget.render_lines(crop)) == textual_rows(widget, crop), (type(widget).__name__, crop)
        note = screen.query_one(GpuPanel).query_one(".gpu--note", KeptStatic)
        note.update("throttle: sw_power_cap", layout=False)  # a repaint: the kept rows go
        await pilot.pause()
        crop = Region(0, 0, *note.region.size)
        assert "throttle" in "".join(s.text for s in note.render_lines(crop))
        assert rows(note.render_lines(crop)) == textual_rows(note, crop)
        assert rows(note.render_lines(crop)) == textual_rows(note, crop)  # kept
        drawn = note.render_line
        note.render_line = lambda y: Strip([Segment("a row repainted alone")]).extend_cell_length(drawn(y).cell_length)
        note.refresh(crop)  # a partial repaint: the row is dirty, the cache not cleared
        assert rows(note.render_lines(crop)) == textual_rows(note, crop)
        assert "a row repainted alone" in "".join(s.text for s in note.render_lines(crop))
