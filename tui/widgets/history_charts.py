"""Which series the detail screen charts, where each comes from (live history or the agent's store),
and the host charts panel (CPU, memory, network, disk).

One ``Series`` names a metric twice: its key in the client's live history (tui/client.py
``sample_metrics``) and its name in the agent's history store (``GET /api/v1/history``), so the
``h`` range switches every chart between the two without a second table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid

from tui import format as fmt
from tui.client import AgentClient
from tui.widgets.chart import Point, TimeChart, window_points
from tui.widgets.kept import KeepsRows

LIVE_SPAN_S = 300.0  # the live range: the client's own history, backfilled on connect


def axis_pct(v: float) -> str:
    return f"{v:.0f}%"


def axis_unit(unit: str) -> Callable[[float], str]:
    return lambda v: f"{v:.0f}{unit}"


def peak_unit(unit: str) -> Callable[[float], str]:
    return lambda v: fmt.num(v, unit)


def axis_rate(v: float) -> str:
    """A rate in at most six characters: 980B/s, 1.3M/s, 52M/s."""
    for unit in ("B", "K", "M", "G"):
        if abs(v) < 1000 or unit == "G":
            return f"{v:.1f}{unit}/s" if 0 < abs(v) < 10 and unit != "B" else f"{v:.0f}{unit}/s"
        v /= 1024
    return f"{v:.0f}G/s"


@dataclass(frozen=True)
class Series:
    live: str  # key in History samples
    stored: str  # metric name in the agent's history store
    label: str
    axis: Callable[[float], str]
    lo: float = 0.0
    hi: float | None = 100.0  # None: scale to the data
    peak: Callable[[float], str] = fmt.pct  # the title's figure: the highest value in the window


def gpu_series(index: int) -> list[Series]:
    return [
        Series(f"gpu{index}.util", f"gpu{index}.utilization_percent", "util", axis_pct),
        Series(f"gpu{index}.power", f"gpu{index}.power_w", "power", axis_unit("W"), hi=None, peak=peak_unit(" W")),
        Series(f"gpu{index}.temp", f"gpu{index}.temperature_c", "temp", axis_unit("°C"), 20.0, 100.0, peak=peak_unit(" °C")),
    ]


HOST_SERIES = [
    Series("cpu", "cpu.percent", "CPU", axis_pct),
    Series("mem", "memory.percent", "memory", axis_pct),
    Series("net.rx", "net.rx_bytes_s", "net rx", axis_rate, hi=None, peak=fmt.rate),
    Series("net.tx", "net.tx_bytes_s", "net tx", axis_rate, hi=None, peak=fmt.rate),
    Series("disk.read", "disk.read_bytes_s", "disk read", axis_rate, hi=None, peak=fmt.rate),
    Series("disk.write", "disk.write_bytes_s", "disk write", axis_rate, hi=None, peak=fmt.rate),
]


@dataclass
class Window:
    """What every chart on the screen shows: the time span and, for a stored range, the agent's series."""

    start: float
    end: float
    stored: dict[str, list[Point]] | None = None  # None: the client's live history

    def points(self, client: AgentClient, series: Series) -> Sequence[Point]:
        if self.stored is not None:
            return self.stored.get(series.stored) or []
        return window_points(client.history, series.live, self.start, self.end)


def chart_for(series: Series, **kw) -> TimeChart:
    return TimeChart(series.label, series.axis, series.lo, series.hi, fmt_peak=series.peak, **kw)


def chart_height(screen_height: int) -> int:
    """Rows per chart (title + plot + time axis): taller charts where the terminal has the rows."""
    return 8 if screen_height >= 55 else (6 if screen_height >= 40 else 4)


class HostCharts(Grid, KeepsRows):
    """CPU, memory, network and disk history, three charts a row when wide, two when narrow."""

    DEFAULT_CSS = """
    HostCharts { height: auto; grid-size: 2; grid-rows: auto; grid-gutter: 0 2; border: round $primary; padding: 0 1; }
    HostCharts.-wide { grid-size: 3; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.border_title = "History"
        self.charts = [chart_for(s) for s in HOST_SERIES]

    def compose(self) -> ComposeResult:
        yield from self.charts

    def show(self, client: AgentClient, window: Window) -> None:
        for series, chart in zip(HOST_SERIES, self.charts, strict=False):
            chart.show(window.points(client, series), window.start, window.end)
