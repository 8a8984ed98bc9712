"""Each frame updates only what changed: the containers table's changed cells, the overview cards whose text changed.

Counts, not time: a frame with the same containers adds and removes no row; a CPU figure that moves
changes that one cell, the rows keep their order and the cursor its row; a container that appears or
goes rebuilds the table with the cursor still on its container.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot

from tests.helpers.tui import refreshes, until
from tests.helpers.tui_fakes import CONTAINERS, GiB, app_for, container, fleet, gpu_gb10, snapshot_frame, spark_client
from tui.app import SparkdeckApp
from tui.messages import MachineChanged
from tui.screens.containers import ContainersScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.containers_table import ContainersTable
from tui.widgets.machine_card import MachineCard


class Counting:
    """Counts a table's add_row/remove_row/clear calls and the cells update_cell changed."""

    def __init__(self, table: ContainersTable):
        self.added = self.cleared = self.removed = 0
        self.cells: list[tuple[str, str]] = []
        add, clear, remove, update = table.add_row, table.clear, table.remove_row, table.update_cell

        def add_row(*a, **kw):
            self.added += 1
            return add(*a, **kw)

        def clear_(*a, **kw):
            self.cleared += 1
            return clear(*a, **kw)

        def remove_row(*a, **kw):
            self.removed += 1
            return remove(*a, **kw)

        def update_cell(row_key, column_key, value, **kw):
            self.cells.append((str(row_key), str(column_key)))
            return update(row_key, column_key, value, **kw)

        table.add_row, table.clear, table.remove_row, table.update_cell = add_row, clear_, remove_row, update_cell


def names(table: ContainersTable) -> list[str]:
    return [str(table.get_row_at(i)[0]).split(" ◆")[0] for i in range(table.row_count)]


async def feed(app, pilot, containers: list[dict]) -> None:
    """One more snapshot frame for the one machine, and wait until the screen has handled it."""
    cl = app.clients[0]
    before = app.ui_updates
    cl.handle_frame(snapshot_frame(cl.last_seq + 1, "spark-01", [gpu_gb10(cl.last_seq + 1)], containers))
    await until(pilot, lambda: app.ui_updates > before, what="the frame handled")
    await pilot.pause()


@asynccontextmanager
async def containers_screen() -> AsyncIterator[tuple[SparkdeckApp, Pilot, ContainersTable]]:
    """The containers screen of the fake spark-01, its four rows shown."""
    app = app_for([spark_client()], "containers")
    async with app.run_test(size=(140, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen))
        table = app.screen.query_one(ContainersTable)
        await until(pilot, lambda: table.row_count == len(CONTAINERS), what="rows")
        yield app, pilot, table


async def test_unchanged_frames_do_not_rebuild_the_table():
    async with containers_screen() as (app, pilot, table):
        counts, rebuilds = Counting(table), table.rebuilds
        for _ in range(5):  # five frames, the same containers (the GPU figures move: not this table's)
            await feed(app, pilot, copy.deepcopy(CONTAINERS))
        assert (counts.added, counts.removed, counts.cleared, counts.cells) == (0, 0, 0, [])
        assert table.rebuilds == rebuilds
        assert table.row_count == len(CONTAINERS)


async def test_a_changed_figure_updates_its_cell_and_keeps_order_and_cursor():
    async with containers_screen() as (app, pilot, table):
        order = names(table)
        table.move_cursor(row=order.index("vllm-qwen"))
        await pilot.pause()
        counts = Counting(table)

        rows = copy.deepcopy(CONTAINERS)
        rows[0]["cpu_percent"] = 87.0  # vllm-qwen: 112.5 % -> 87.0 %
        await feed(app, pilot, rows)
        assert counts.cells == [("a1" * 32, "cpu_percent")]  # that one cell, nothing else
        assert (counts.added, counts.cleared) == (0, 0)
        assert str(table.get_cell("a1" * 32, "cpu_percent")) == "87.0%"
        assert names(table) == order
        assert table.selected()["name"] == "vllm-qwen"

        rows[1]["memory_bytes"] = 2 * GiB  # another container's memory: its cell, the cursor stays
        await feed(app, pilot, rows)
        assert counts.cells[1:] == [("b2" * 32, "memory_bytes")]
        assert str(table.get_cell("b2" * 32, "memory_bytes")) == "2.0 GiB"
        assert table.selected()["name"] == "vllm-qwen"

        # what the table shows is what a full rebuild from the same frame shows
        shown = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        table.show(list(table.by_id.values()))
        table._order = []  # force the rebuild path
        table.show(list(table.by_id.values()))
        assert [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)] == shown


async def test_a_changed_figure_repaints_its_row_and_the_screen_keeps_the_rest_as_a_full_repaint_would_draw_it():
    from textual.geometry import Region

    async with containers_screen() as (app, pilot, table):
        rows = copy.deepcopy(CONTAINERS)
        rows[1]["cpu_percent"] = 2.3  # the summary line, first set before the screen had a width, is measured once laid out
        await feed(app, pilot, rows)
        with refreshes() as refreshed:
            rows[1]["cpu_percent"] = 3.4  # open-webui 1.2 % -> 3.4 %: the same width, the CPU column stays as it is
            rows[0]["memory_bytes"] += 4096  # vllm-qwen: the same text ("6.0 GiB"), no repaint at all
            await feed(app, pilot, rows)
        mine = [(regions, layout) for w, regions, layout in refreshed if w is table]
        assert mine and all(regions and not layout for regions, layout in mine), mine  # rows, never the whole table
        assert not [(w, r) for w, r, layout in refreshed if layout], [(w, r) for w, r, layout in refreshed]  # the summary line changed: a repaint, not a layout
        area = Region(0, 0, *table.outer_size)
        kept = [strip.text for strip in table.render_lines(area)]
        table._styles_cache.clear()
        assert kept == [strip.text for strip in table.render_lines(area)]  # no row left stale


async def test_containers_appearing_and_going_rebuild_with_the_cursor_on_its_row():
    async with containers_screen() as (app, pilot, table):
        table.move_cursor(row=names(table).index("scratch"))
        await pilot.pause()
        rows = copy.deepcopy(CONTAINERS)
        rows.append(container("e5" * 32, "aaa-new", "busybox:latest", "running", "Up 3 seconds", 0.5, 10 * 1024**2, None))
        await feed(app, pilot, rows)
        assert table.row_count == len(CONTAINERS) + 1
        assert names(table)[0] == "aaa-new"  # sorted by name: first
        assert table.selected()["name"] == "scratch"  # the cursor followed its row down

        await feed(app, pilot, [r for r in rows if r["name"] != "open-webui"])
        assert "open-webui" not in names(table) and table.row_count == len(CONTAINERS)
        assert table.selected()["name"] == "scratch"
        assert names(table) == sorted(names(table))


async def test_overview_cards_repaint_only_when_their_text_changes():
    app = app_for(fleet(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        cards = list(app.screen.query(MachineCard))
        repaints = {id(card): 0 for card in cards}
        for card in cards:
            refresh = card.refresh

            def counted(*a, _card=card, _refresh=refresh, **kw):
                repaints[id(_card)] += 1
                return _refresh(*a, **kw)

            card.refresh = counted
        for card in cards:  # the clock is frozen: a tick moves no age, so no card repaints
            card.tick()
        await pilot.pause()
        assert sum(repaints.values()) == 0
        spark = app.clients[0]
        before = app.ui_updates
        spark.handle_frame(snapshot_frame(spark.last_seq + 1, "spark-01", [gpu_gb10(spark.last_seq + 7)], CONTAINERS))
        await until(pilot, lambda: app.ui_updates > before, what="the frame handled")
        await pilot.pause()
        assert repaints[id(cards[0])] >= 1  # its GPU figures moved
        assert all(repaints[id(card)] == 0 for card in cards[1:])  # the others' did not
        # the card as painted line by line is the card painted whole
        partial = [list(strip) for strip in cards[0].render_lines(cards[0].size.region)]
        cards[0].refresh()
        await pilot.pause()
        assert [list(strip) for strip in cards[0].render_lines(cards[0].size.region)] == partial
        assert "GPU0" in "".join(strip.text for strip in cards[0].render_lines(cards[0].size.region))


def cells(strips) -> list[list[tuple[str, object, object, bool | None, bool | None]]]:
    """What a terminal shows: each cell's character, colours and attributes (a blank's foreground is invisible)."""
    rows = []
    for strip in strips:
        row = []
        for seg in strip:
            st = seg.style
            for ch in seg.text:
                fg = None if ch == " " or st is None else st.color
                row.append((ch, fg, None if st is None else st.bgcolor, None if st is None else st.bold, None if st is None else st.italic))
        while row and row[-1][0] == " ":  # padding to the width: the styles cache pads a short line with the same blanks
            row.pop()
        rows.append(row)
    return rows


async def test_panels_draw_line_by_line_the_cells_textual_draws_whole_and_draw_only_changed_lines():
    from textual.visual import Visual

    from tui.widgets.panel import TextPanel

    app = app_for(fleet(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        panels = list(app.screen.query(TextPanel))
        assert len(panels) >= 3
        for panel in panels:  # our strips against Textual's own whole-widget render of the same text
            ours = [panel.render_line(y) for y in range(panel.size.height)]
            whole = Visual.to_strips(panel, panel._render(), panel.size.width, panel.size.height, panel.visual_style, pad=True)
            assert cells(ours) == cells(whole)
        drawn: list[int] = []  # the lines Textual asked the first card for after the frame
        render_line = panels[0].render_line
        panels[0].render_line = lambda y: drawn.append(y) or render_line(y)
        spark = app.clients[0]
        before = app.ui_updates
        spark.handle_frame(snapshot_frame(spark.last_seq + 1, "spark-01", [gpu_gb10(spark.last_seq + 7)], CONTAINERS))
        await until(pilot, lambda: app.ui_updates > before, what="the frame handled")
        await pilot.pause()
        assert drawn  # the card changed
        assert len(drawn) < panels[0].size.height  # only the lines that changed (the GPU line, not the rest)


async def test_the_fleet_overview_paints_changed_cards_together_at_most_once_a_tick():
    clients = fleet()
    for i, cl in enumerate(clients[1:], 1):  # three live machines
        cl.state, cl.reason = "live", ""
        cl.handle_frame(snapshot_frame((cl.last_seq or 0) + 1, f"m{i}", [gpu_gb10((cl.last_seq or 0) + 3)], CONTAINERS))
    app = app_for(clients, "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        flushes: list[list[int]] = []
        flush = app._flush_batch

        def counted():
            flushes.append(sorted(app._batch))
            flush()

        app._flush_batch = counted
        messages: list[int] = []
        post = app.post_message

        def counted_post(message):
            if isinstance(message, MachineChanged):
                messages.append(message.index)
            return post(message)

        app.post_message = counted_post
        app._tick_timer.pause()  # ticked by hand below: a real tick between two frames would make a third, legitimate pass
        before = app.ui_updates
        for cl in clients:  # three agents' frames land at different moments within one second
            cl.handle_frame(snapshot_frame(cl.last_seq + 1, "x", [gpu_gb10(cl.last_seq + 9)], CONTAINERS))
            await pilot.pause(0.05)
        app._tick()
        await until(pilot, lambda: app.ui_updates >= before + 3, timeout=5, what="all three cards refreshed")
        assert 1 <= len(flushes) <= 2 and sorted(i for f in flushes for i in f) == [0, 1, 2]  # not one pass per agent
        assert not app._pending[0] and not app._batch
        assert messages == []  # a frame on the overview goes straight to the batch: no message per frame


async def test_the_detail_screen_repaints_changed_chart_rows_and_no_whole_panel_and_never_goes_stale():
    from textual.geometry import Region

    from tests.helpers.tui_fakes import NOW
    from tui.screens.machine import MachineScreen
    from tui.widgets.chart import TimeChart

    cl = spark_client()
    app = app_for([cl], "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, MachineScreen))
        await pilot.pause(0.3)
        charts = list(app.screen.query(TimeChart))
        assert len(charts) >= 9
        with refreshes() as seen:
            for seq in range(121, 126):  # five seconds of frames, the clock moving with them
                app.clock = lambda s=seq: float(NOW - 120 + s)  # type: ignore[misc]
                before = app.ui_updates
                cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
                await until(pilot, lambda b=before: app.ui_updates > b, what="the frame handled")
                await pilot.pause()
        refreshed = [(r.widget, r.regions) for r in seen]
        whole = {type(w).__name__ for w, regions in refreshed if not regions}
        # a border title set again repainted all inside; the connection line says the same ("live") on every frame
        assert not whole & {"GpuPanel", "HostCharts", "TimeChart", "MachineScreen", "ViewScroll", "ConnBar"}, whole
        rows = [len(regions) for w, regions in refreshed if isinstance(w, TimeChart)]
        assert rows and all(n < charts[0].size.height for n in rows), rows  # the rows that changed (the figure, the newest column)
        for chart in charts:  # what the screen keeps for unchanged rows is what a full repaint would draw now
            area = Region(0, 0, *chart.outer_size)
            kept = [strip.text for strip in chart.render_lines(area)]
            chart._styles_cache.clear()
            assert kept == [strip.text for strip in chart.render_lines(area)], chart.label


async def test_the_overview_tick_rebuilds_a_live_card_when_its_sparkline_moves_and_a_reconnecting_one_every_second():
    app = app_for(fleet(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        live, reconnecting = list(app.screen.query(MachineCard))[:2]
        builds = {id(live): 0, id(reconnecting): 0}
        for card in (live, reconnecting):
            build = card.build

            def counted(width, card=card, build=build):
                builds[id(card)] += 1
                return build(width)

            card.build = counted
        step = live._trend_steps[0]  # seconds a sparkline column spans
        assert step > 1.5
        start = (int(live.clock() // step) + 1) * step + 0.1  # just after a column boundary
        for k in range(int(step)):  # one tick a second within one column
            live.clock = reconnecting.clock = lambda k=k: start + k  # type: ignore[misc]
            live.tick()
            reconnecting.tick()
        assert builds[id(live)] == 1  # once, when the column moved; the other seconds change nothing it shows
        assert builds[id(reconnecting)] == int(step)  # its countdown moves every second


async def test_opening_a_screen_composes_its_footer_once_per_change_of_keys_not_per_bindings_signal():
    from tui.widgets.fit_footer import FitFooter

    composed: list[str] = []
    compose = FitFooter.compose

    def counted(self):
        composed.append(type(self.screen).__name__)
        return compose(self)

    FitFooter.compose = counted
    try:
        app = app_for([spark_client()], "overview")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.3)
            composed.clear()
            await pilot.press("d")
            await pilot.pause(0.5)
            footer = app.screen.query_one(FitFooter)
            assert "Chart range" in " ".join(str(getattr(k, "description", "")) for k in footer.children)  # the detail screen's keys, shown
    finally:
        FitFooter.compose = compose
    assert composed.count("MachineScreen") <= 2, composed  # mounted, then the bindings once known (it was four)


async def test_the_overview_holds_snapshots_for_its_tick_and_paints_them_in_that_pass():
    """On the fleet overview a client's snapshots wait for the tick (tui/client.py, held frames); the tick handles them
    before its pass, so a held frame is painted by the tick after it came, not one later. Other screens hold none."""
    from agent.protocol import encode
    from tui.screens.machine import MachineScreen

    app = app_for(fleet(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        app._tick_timer.pause()
        spark = app.clients[0]
        assert spark.hold is not None
        app._last_flush, app._batch = time.monotonic() - 2.0, set()  # a quiet spell: the next frame is painted at once
        assert not spark.hold()
        app._last_flush, app._batch = time.monotonic(), {1}  # mid-stream: a pass a second ago, another card waiting
        assert spark.hold()
        card = next(card for card in app.screen.query(MachineCard) if card.index == 0)
        gpu = {**gpu_gb10(spark.last_seq + 1), "utilization_gpu_percent": 13.0}
        spark._held.append(encode(snapshot_frame(spark.last_seq + 1, "spark-01", [gpu], CONTAINERS)))
        assert not any("13%" in line.plain for line in card._wrapped)
        app._tick()
        await pilot.pause()
        assert spark._held == [] and any(line.plain.startswith("GPU0  13%") for line in card._wrapped)
        await pilot.press("enter")  # the machine's detail screen: frames are handled as they come
        await until(pilot, lambda: isinstance(app.screen, MachineScreen))
        assert not spark.hold()
