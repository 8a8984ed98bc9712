"""One GPU: figures (n/a with reasons), and util/power/temp time charts from history."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from tui import format as fmt
from tui.client import AgentClient
from tui.widgets.figures import Figures
from tui.widgets.history_charts import Window, chart_for, gpu_series
from tui.widgets.kept import KeepsRows, KeptStatic, KeptVertical
from tui.widgets.styles import set_border_text

FIELDS = [  # (key in the GPU dict, label)
    ("utilization_gpu_percent", "Util"),
    ("temperature_c", "Temp"),
    ("power_w", "Power"),
    ("power_limit_w", "Limit"),
    ("fan_percent", "Fan"),
    ("sm_clock_mhz", "SM"),
    ("mem_clock_mhz", "MemClk"),
    ("pstate", "P"),
    ("temperature_slowdown_c", "Slowdown"),
]


def field_value(gpu: dict, key: str) -> str | None:
    v = gpu.get(key)
    if key in gpu.get("unsupported", ()) or v is None:
        return None
    if key == "utilization_gpu_percent":
        return fmt.pct(v)
    if key in ("temperature_c", "temperature_slowdown_c"):
        return fmt.num(v, " °C")
    if key in ("power_w", "power_limit_w"):
        return fmt.num(v, " W", 1)
    if key == "fan_percent":
        return fmt.pct(v)
    if key in ("sm_clock_mhz", "mem_clock_mhz"):
        return f"{v} MHz"
    if key == "memory":
        if v.get("used_bytes") is None:
            return None
        tag = "  unified (shared with the CPU)" if v.get("unified") else ""
        total = v.get("total_bytes")
        share = f" ({100 * v['used_bytes'] / total:.0f}%)" if total else ""
        return f"{fmt.size(v['used_bytes'])} / {fmt.size(total)}{share}{tag}"
    return str(v)


def figure_values(gpu: dict) -> dict[str, tuple[str | None, str | None]]:
    """Key -> (shown value, or None for n/a; the reason an n/a field gives) for every figure of a GPU."""
    reasons = gpu.get("na_reasons") or {}
    error = gpu.get("error") if gpu.get("status") == "error" else None
    out: dict[str, tuple[str | None, str | None]] = {}
    for key in [k for k, _ in FIELDS] + ["memory"]:
        value = field_value(gpu, key) if gpu.get("status") != "error" else None
        reason = reasons.get(key) or error
        if key == "memory" and value is None:
            reason = reason or reasons.get("memory.used_bytes") or "memory not reported"
        out[key] = (value, reason)
    return out


class GpuPanel(Vertical, KeepsRows):
    DEFAULT_CSS = """
    GpuPanel { height: auto; border: round $primary; padding: 0 1; }
    GpuPanel > .gpu--note { color: $warning; height: 1; }
    GpuPanel > .gpu--charts { layout: grid; grid-size: 1; grid-rows: auto; grid-gutter: 0 2; height: auto; }
    GpuPanel.-wide > .gpu--charts { grid-size: 3; }
    """

    def __init__(self, index: int, **kw):
        super().__init__(**kw)
        self.gpu_index = index
        self.figures = Figures(FIELDS, [("memory", "Memory")])
        self.series = gpu_series(index)
        self.charts = [chart_for(s) for s in self.series]
        self.note = KeptStatic("", classes="gpu--note")  # one row, always there: a throttle note coming and going moves nothing below
        self._pending: tuple | None = None
        self._composed = False

    def compose(self) -> ComposeResult:
        yield self.figures
        yield self.note
        with KeptVertical(classes="gpu--charts"):
            yield from self.charts

    def on_mount(self) -> None:
        self._composed = True
        if self._pending is not None:
            self.show(*self._pending)

    def show(self, client: AgentClient, gpu: dict, width: int, window: Window, chart_rows: int = 4) -> None:
        """``window``: the span every chart shows and where its data comes from (live or the agent's store)."""
        if not self._composed:  # just created: fill in once mounted
            self._pending = (client, gpu, width, window, chart_rows)
            return
        self._pending = None
        set_border_text(self, title=f"GPU {gpu['index']}  {gpu.get('name') or ''}")
        wide = (self.size.width or width) >= 100
        self.set_class(wide, "-wide")  # five figures a row, three charts, when the panel itself is wide
        note = self.note
        throttle = [r for r in gpu.get("throttle_reasons") or [] if r]
        text = f"error: {gpu.get('error') or 'unknown'}" if gpu.get("status") == "error" else (f"throttle: {', '.join(throttle)}" if throttle else "")
        if getattr(note, "_last", None) != text:  # the row is reserved: a change repaints it, it never re-lays out
            note._last = text  # type: ignore[attr-defined]
            note.update(text, layout=False)  # height 1 whatever it says: a repaint, not a layout of the screen
        self.figures.show(figure_values(gpu), columns=5 if wide else 4)
        power_hi = gpu.get("power_limit_w")  # else the chart scales to the highest power shown
        for series, chart in zip(self.series, self.charts, strict=False):
            chart.set_rows(chart_rows)
            chart.show(window.points(client, series), window.start, window.end, hi=power_hi if series.label == "power" else None)
