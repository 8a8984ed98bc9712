"""What the detail screen's charts and layout show the user, from fake frame sequences (no agent needed):
an outage is a gap, the throttle note never moves what is below it, GPU panels side by side end together,
and reopening the screen reuses it."""

from __future__ import annotations

from tests.helpers.tui import refreshes
from tests.helpers.tui_fakes import CONTAINERS, NOW, app_for, clock, fleet, gpu_gb10, gpu_h200, hello, snapshot_frame
from tui.client import AgentClient, Target
from tui.screens.machine import MachineScreen
from tui.widgets.chart import GUTTER, TimeChart
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.history_charts import HostCharts


def client_with_hole(hole: tuple[float, float]) -> AgentClient:
    """One sample a second for the last 200 s, none inside ``hole`` (seconds before NOW)."""
    cl = AgentClient(Target("spark-01", "http://spark-01.local:8611", "t"), clock=clock)
    cl.handle_frame(hello("spark-01"))
    for seq in range(1, 201):
        age = 200 - seq
        if hole[1] < age < hole[0]:
            continue
        frame = snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS)
        frame["ts"] = NOW - age
        cl.handle_frame(frame)
    return cl


def plot_row(chart: TimeChart, row: int = -2) -> str:
    """One plot row of the chart as drawn, without its value-axis gutter (row -2: the lowest plot row)."""
    return chart.render().plain.split("\n")[row][GUTTER:]


async def test_a_25_s_outage_shows_as_a_gap_in_every_chart():
    app = app_for([client_with_hole((100.0, 75.0))], "detail")  # nothing between 100 s and 75 s ago
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        charts = list(screen.query_one(GpuPanel).charts) + list(screen.query_one(HostCharts).charts)
        for chart in charts:
            row = plot_row(chart)
            cols = len(row)
            step = 300 / cols  # the live range: the last 5 minutes across the plot
            data = row.rstrip()
            assert len(data) == cols, (chart.label, row)  # drawn up to now
            first = len(row) - len(row.lstrip())  # the data starts 200 s ago: left of it is blank too
            assert abs(first - round(100 / step)) <= 1, (chart.label, first)
            holes = [len(run) for run in "".join(" " if c == " " else "x" for c in row[first:]).split("x") if run]
            assert len(holes) == 1 and abs(holes[0] - 25 / step) <= 2, (chart.label, row)
        util = charts[0].render().plain
        assert "util" in util and "100%" in util and "0%" in util and "-5m" in util and "now" in util


async def test_throttle_note_coming_and_going_moves_nothing_below_it():
    cl = AgentClient(Target("spark-01", "http://spark-01.local:8611", "t"), clock=clock)
    cl.handle_frame(hello("spark-01"))
    for seq in range(1, 61):
        cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
    app = app_for([cl], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        panel = screen.query_one(GpuPanel)
        note = panel.query_one(".gpu--note")

        def below() -> list[int]:
            return [panel.charts[0].region.y, panel.region.bottom, screen.query_one(HostCharts).region.y, screen.query_one("#panels").region.y]

        before = below()
        for seq, reasons in ((61, ["hw_thermal_slowdown", "sw_power_cap"]), (62, []), (63, ["sw_thermal_slowdown"])):
            gpu = gpu_gb10(seq) | {"throttle_reasons": reasons}
            cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu], CONTAINERS))
            screen.update_view()  # type: ignore[attr-defined]
            await pilot.pause()
            assert ("throttle: " + ", ".join(reasons) if reasons else "") == str(note.render()).strip()
            assert below() == before, reasons


async def test_two_gpu_panels_side_by_side_end_on_the_same_row():
    clients = fleet()  # h200-box: two GPUs; make only GPU 1 throttle so the panels' contents differ
    h200 = clients[1]
    frame = snapshot_frame(61, "h200-box", [], None)
    frame["gpus"] = [gpu_h200(0, 61, 71.0), gpu_h200(1, 61, 88.0) | {"throttle_reasons": ["hw_thermal_slowdown"]}]
    h200.handle_frame(frame)
    app = app_for(clients, "overview")
    for size in ((160, 48), (220, 60)):
        async with app.run_test(size=size) as pilot:
            app.current = 1
            app.action_view("detail")
            await pilot.pause()
            left, right = app.screen.query(GpuPanel)
            assert left.region.y == right.region.y and left.region.x < right.region.x  # side by side
            assert left.region.bottom == right.region.bottom, size
        app = app_for(fleet(), "overview")


async def test_charts_use_the_rows_of_a_big_terminal():
    for size, rows in (((80, 24), 4), ((160, 48), 6), ((220, 60), 8)):
        app = app_for([client_with_hole((0.0, 0.0))], "detail")
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            charts = list(app.screen.query(TimeChart))
            assert len(charts) == 9 and {c.size.height for c in charts} == {rows}, size


async def test_reopening_the_detail_screen_reuses_it_and_keeps_the_range():
    app = app_for([client_with_hole((0.0, 0.0))], "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("d")
        first = app.screen
        assert isinstance(first, MachineScreen)
        await pilot.press("h")  # 1 h (the fake client has no agent: it falls back to live with a warning)
        await pilot.press("o")
        await pilot.press("d")
        assert app.screen is first and first.live_view
        await pilot.press("o")
        await pilot.pause()
        assert not first.live_view  # off the stack: frames do not refresh it


async def test_a_chart_shown_before_it_has_a_width_draws_the_window_of_its_real_width():
    """A GPU panel mounted for a new GPU shows its charts before layout (width 0): the window must be put on
    the columns of the width it is drawn at, not of one column (that ended it up to the whole span ahead)."""
    from textual.app import App

    from tui.widgets.chart import anchored, bucket
    from tui.widgets.spark import spark_rows

    points = [(NOW - 299 + i, 40.0 + (i % 50)) for i in range(300)]
    chart = TimeChart("util", lambda v: f"{v:.0f}%")
    chart.show(points, NOW - 300, NOW)  # not mounted: no width yet

    class One(App):
        def compose(self):
            yield chart

    async with One().run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        cols = chart.size.width - GUTTER
        start, end = anchored(NOW - 300, NOW, cols)
        expect = spark_rows(bucket(points, start, end, cols, now=NOW), cols, 0.0, 100.0, chart.size.height - 2)
        assert [plot_row(chart, r) for r in range(1, chart.size.height - 1)] == expect


async def test_a_chart_title_gives_the_windows_peak_and_a_sample_that_raises_no_column_repaints_nothing():
    """The title's figure is the highest value in the window (the latest is on the screen already, beside the
    chart); a sample that raises no column's peak draws the same rows and repaints none of them, one above the
    peak repaints the title and the plot rows that changed, and the peak goes when its column leaves the window."""
    from textual.app import App

    from tui import format as fmt

    chart = TimeChart("net rx", lambda v: f"{v:.0f}", hi=None, fmt_peak=fmt.rate)

    class One(App):
        def compose(self):
            yield chart

    def title() -> str:
        return chart.render().plain.split("\n")[0]

    async with One().run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        step = 300 / (chart.size.width - GUTTER)
        t0 = (NOW // step) * step + 0.1  # just inside a column: the next two samples fall in the same one
        points: list[tuple[float, float | None]] = [(t0 - 199 + i, 1000.0) for i in range(200)]
        points[100] = (points[100][0], 5 * 2**20)  # a 5 MiB/s burst 100 s ago
        chart.show(list(points), t0 - 300, t0)
        await pilot.pause()
        assert title() == "net rx peak 5.0 MiB/s"

        with refreshes() as refreshed:
            points.append((t0 + 0.5, 900.0))  # under the newest column's peak, in the same column
            chart.show(list(points), t0 - 299.5, t0 + 0.5)
            assert refreshed == [] and title() == "net rx peak 5.0 MiB/s"
            points.append((t0 + 0.7, 8 * 2**20))  # a new peak: the title and the newest column
            chart.show(list(points), t0 - 299.3, t0 + 0.7)
            assert title() == "net rx peak 8.0 MiB/s"
            assert len(refreshed) == 1 and 0 < len(refreshed[0].regions) < chart.size.height, refreshed
        later = [(t0 + 300 + i, 2000.0) for i in range(10)]  # five minutes on: both bursts out of the window
        chart.show(points + later, t0 + 10, t0 + 310)
        assert title() == "net rx peak 2.0 KiB/s"
        chart.show([], t0 + 10, t0 + 310)
        assert title() == "net rx  no data yet"
