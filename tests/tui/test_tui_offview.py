"""Panels out of view hold their repaints (tui/widgets/offview.py): no refresh while the detail screen does not
show them (a refresh there made Textual arrange the whole screen again), and the current lines when a scroll
or a layout brings them back, not the ones kept from when they were last seen."""

from __future__ import annotations

import pytest
from textual.dom import DOMNode, NoScreen
from textual.geometry import Region
from textual.widget import Widget

from tests.helpers.tui import frames, open_detail, refreshes
from tests.helpers.tui_fakes import app_for, spark_client
from tui.widgets.chart import TimeChart
from tui.widgets.cpu_panel import CpuPanel
from tui.widgets.offview import HoldsRepaints, in_view
from tui.widgets.styles import set_border_text


def kept_rows_are_current(widget: Widget) -> bool:
    """The rows the screen is given for the widget now (Textual's kept lines, ours) are what it draws afresh."""
    area = Region(0, 0, *widget.outer_size)
    kept = [strip.text for strip in widget.render_lines(area)]
    widget._styles_cache.clear()
    return kept == [strip.text for strip in widget.render_lines(area)]


def detail_app():
    cl = spark_client()
    return app_for([cl], "overview"), cl


async def test_a_panel_below_the_fold_holds_its_repaints_and_shows_todays_lines_when_scrolled_to_or_laid_out_into_view():
    app, cl = detail_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, scroll = await open_detail(app, pilot, cl)
        cpu = screen.query_one(CpuPanel)
        top_chart = screen.query(TimeChart).first()
        scroll.scroll_to_widget(cpu, animate=False, immediate=True)  # seen once: the screen keeps its lines
        await pilot.pause(0.2)
        assert in_view(cpu)
        scroll.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.2)
        assert not in_view(cpu) and in_view(top_chart)

        with refreshes() as seen:
            lines = list(cpu._wrapped)
            await frames(app, pilot, cl, range(122, 126))  # the per-core bars move every frame
        refreshed = [r.widget for r in seen]
        assert cpu._wrapped != lines  # its lines changed ...
        assert cpu not in refreshed and cpu.repaint_held  # ... and it was not repainted out of view
        assert top_chart in refreshed  # what is in view still is

        scroll.scroll_to_widget(cpu, animate=False, immediate=True)
        assert not cpu.repaint_held  # made as the scroll began: its pass draws today's rows, not a pass later
        await pilot.pause(0.2)
        assert in_view(cpu)
        assert kept_rows_are_current(cpu)  # not the lines of when it was last seen

        scroll.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.2)
        await frames(app, pilot, cl, range(126, 129))
        assert cpu.repaint_held
        await pilot.resize_terminal(80, 90)  # the same width: a layout, not a rebuild, brings it into view
        await pilot.pause(0.3)
        assert in_view(cpu) and not cpu.repaint_held
        assert kept_rows_are_current(cpu)
        await frames(app, pilot, cl, [129])  # in view: repainted again as its rows change
        assert not cpu.repaint_held and kept_rows_are_current(cpu)

        # held and in view with no layout since (a screen that published none): its next change repaints it whole
        cpu.repaint_held = True
        with refreshes() as seen:
            await frames(app, pilot, cl, [130])
        whole = [r.widget for r in seen if not r.regions]
        assert cpu in whole and not cpu.repaint_held


async def test_a_border_text_set_below_the_fold_is_held_and_set_when_the_panel_is_seen():
    """Textual's border title setter repaints the whole widget; out of view that arranged the whole screen again
    (the throttle timeline's "N ongoing" every few seconds): it is held like a repaint, the last one wins."""
    app, cl = detail_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, scroll = await open_detail(app, pilot, cl)
        cpu = screen.query_one(CpuPanel)
        scroll.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.2)
        assert not in_view(cpu)
        with refreshes() as seen:
            set_border_text(cpu, subtitle="first")
            set_border_text(cpu, subtitle="2 ongoing")
        assert cpu not in [r.widget for r in seen] and cpu.repaint_held
        assert cpu.border_subtitle is None  # not yet
        scroll.scroll_to_widget(cpu, animate=False, immediate=True)
        assert cpu.border_subtitle == "2 ongoing" and not cpu.repaint_held
        await pilot.pause(0.2)
        assert "2 ongoing" in "".join(strip.text for strip in cpu.render_lines(Region(0, 0, *cpu.outer_size)))

        set_border_text(cpu, subtitle="in view")  # seen: set at once
        assert cpu.border_subtitle == "in view" and not cpu.border_held


async def test_in_view_and_the_kept_screen_agree_with_textuals_lookups_and_a_removed_panel_keeps_neither():
    app, cl = detail_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, scroll = await open_detail(app, pilot, cl)
        panels = list(screen.query(HoldsRepaints))
        assert len(panels) > 10
        seen = set()
        for y in range(0, round(scroll.max_scroll_y) + 1, 3):  # each scroll position: some panels in view, some not
            scroll.scroll_to(y=y, animate=False, immediate=True)
            await pilot.pause(0.05)
            for panel in panels:
                assert panel.screen is DOMNode.screen.fget(panel) is screen  # type: ignore[attr-defined]
                if in_view(panel) != screen.can_view_partial(panel):
                    # Textual's map keeps a widget whose clip is an empty line at its edge (Region.overlaps says
                    # yes there): in view to Textual's refresh too, so a repaint of it costs no new arrangement
                    _, clip = screen._compositor.visible_widgets[panel]
                    assert clip.area == 0, (type(panel).__name__, y)
                seen.add(in_view(panel))
        assert seen == {True, False}

        cpu = screen.query_one(CpuPanel)
        assert cpu._seen_on == (cpu.parent, screen)
        await cpu.remove()
        await pilot.pause()
        assert cpu._seen_on is None  # a removed panel holds neither its parent nor its screen
        with pytest.raises(NoScreen):  # as Textual's own lookup: a removed widget is on no screen
            _ = cpu.screen
