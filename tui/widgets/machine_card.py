"""Overview card for one machine: state, GPU figures, memory, noise, containers, alerts."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from tui import client as c
from tui import format as fmt
from tui.alerts import Alert
from tui.messages import OpenMachine
from tui.widgets.chart import Buckets, anchored, bucket, window_points
from tui.widgets.conn_bar import ICONS, name_suffix, stale_text, state_text
from tui.widgets.panel import TextPanel
from tui.widgets.spark import spark_text
from tui.widgets.styles import set_border_text

TREND_S = 120.0  # the card's sparklines: GPU utilisation over the last two minutes, by wall time (gaps stay gaps)


def trend(client: c.AgentClient, key: str, now: float, width: int, kept: Buckets | None = None) -> str:
    """A one-row, time-indexed sparkline of a 0-100 % series ("" when there is no room), on wall-time columns
    as the detail screen's charts are; ``kept``: the card's buckets from its last frame."""
    if width < 8:
        return ""
    start, end = anchored(now - TREND_S, now, width)
    points = window_points(client.history, key, start, now)
    values = kept.values(points, start, end, width, now) if kept is not None else bucket(points, start, end, width, now=now)
    return spark_text(values, width, 0.0, 100.0)


def gpu_line(gpu: dict) -> str:
    if gpu.get("status") == "error":
        return f"GPU{gpu['index']} error: {gpu.get('error') or '?'}"
    return (
        f"GPU{gpu['index']} {fmt.pct(gpu.get('utilization_gpu_percent')):>4}  "
        f"{fmt.num(gpu.get('temperature_c'), '°C'):>5}  {fmt.num(gpu.get('power_w'), 'W', 0):>5}"
    )


def memory_fraction(snap: dict) -> tuple[float | None, str, bool]:
    """The card's memory bar: GPU memory summed over every GPU, or (unified / no GPU) host memory."""
    gpus = snap.get("gpus") or []
    mems = [g.get("memory") or {} for g in gpus]
    unified = any(m.get("unified") for m in mems)
    if gpus and not unified and all(m.get("total_bytes") for m in mems):
        total = sum(m["total_bytes"] for m in mems)
        used = None if any(m.get("used_bytes") is None for m in mems) else sum(m["used_bytes"] for m in mems)
        return (used / total if used is not None else None), f"{fmt.size(used)}/{fmt.size(total)} GPU", False
    return host_fraction(snap) + (unified,)


def host_fraction(snap: dict) -> tuple[float, str]:
    host = snap["host"]["memory"]
    return host["percent"] / 100, f"{fmt.size(host['used_bytes'])}/{fmt.size(host['total_bytes'])}"


class MachineCard(TextPanel, can_focus=True):
    """Shows one AgentClient and its alerts; Enter or a click opens the machine."""

    DEFAULT_CSS = """
    MachineCard:focus { border: round $accent; }
    MachineCard.-stale { border: round $warning; text-opacity: 70%; }
    MachineCard.-failed { border: round $error; }
    MachineCard > .card--alert { color: $error; }
    MachineCard > .card--warn { color: $warning; }
    MachineCard > .card--ok { color: $success; }
    """
    COMPONENT_CLASSES = {"card--alert", "card--warn", "card--ok"}
    BINDINGS = [("enter", "open", "Open")]

    def __init__(self, index: int, clock: Callable[[], float], **kw):
        super().__init__(**kw)
        self.index = index
        self.clock = clock
        self._trends: dict[str, tuple[tuple, str]] = {}  # series -> (what it was drawn from, the sparkline)
        self._buckets: dict[str, Buckets] = {}  # series -> its columns, kept from frame to frame
        self._trend_steps: list[float] = []
        self._built_clock: tuple | None = None  # _clock_key of the last build

    def show(self, data: tuple[c.AgentClient, list[Alert]]) -> None:
        client, _ = data
        title = Text.assemble((client.name, "bold"), (name_suffix(client), "dim"))
        set_border_text(self, title=title)  # setting it repaints the whole card, border and all: only when it changes
        self.set_class(client.stale, "-stale")
        self.set_class(client.state in (c.AUTH_FAILED, c.INCOMPATIBLE), "-failed")
        super().show(data)

    def tick(self) -> None:
        """Ages and countdowns move on; a live card's only clock-driven part is its sparkline, which moves a column
        every few seconds: the card is rebuilt when that could change what it shows, not every second."""
        if self.data is not None and self._clock_key(self.clock()) != self._built_clock:
            self._rebuild()

    def _clock_key(self, now: float) -> tuple:
        """What of the card depends on the time: the sparklines' columns, and the whole second for ages and countdowns."""
        cl = self.data[0]
        ticking = cl.state != c.LIVE or cl.stale
        return (int(now) if ticking else None, tuple(int(now // step) for step in self._trend_steps))

    def _trend(self, cl: c.AgentClient, key: str, now: float, width: int) -> str:
        """``trend``, drawn again only when a sample arrived or the window moved by a column: the overview's
        tick rebuilds every card each second, and bucketing the whole history was most of a card's cost."""
        step = TREND_S / max(1, width)
        self._trend_steps.append(step)
        said = (cl.history, cl.history.version, int(now // step), width)
        kept = self._trends.get(key)
        if kept is not None and kept[0] == said:
            return kept[1]
        drawn = trend(cl, key, now, width, self._buckets.setdefault(key, Buckets()))
        self._trends[key] = (said, drawn)
        return drawn

    def action_open(self) -> None:
        self.post_message(OpenMachine(self.index))

    def on_click(self) -> None:
        self.post_message(OpenMachine(self.index))

    def _bar(self, t: Text, label: str, frac: float | None, figures: str, width: int, extra: int) -> None:
        bad, ok = self.get_component_rich_style("card--alert"), self.get_component_rich_style("card--ok")
        t.append(label, "dim")
        t.append(fmt.bar(frac, max(4, width - len(figures) - extra - 7)), bad if (frac or 0) > 0.9 else ok)
        t.append(f" {figures}")

    def build(self, width: int) -> Text:
        cl, alerts = self.data
        now = self.clock()
        self._trend_steps = []  # filled by _trend: the columns this build drew
        width = max(10, width)
        label, detail = state_text(cl, now)
        ok = self.get_component_rich_style("card--ok")
        warn = self.get_component_rich_style("card--warn")
        bad = self.get_component_rich_style("card--alert")
        state_style = ok if cl.state == c.LIVE else (warn if cl.state in (c.CONNECTING, c.RECONNECTING) else bad)
        t = Text()
        t.append(f"{ICONS.get(cl.state, '?')} {label}", state_style)
        t.append(f"  {detail}\n", "dim")
        stale = stale_text(cl, now)
        if stale:
            t.append(stale + "\n", warn)
        snap = cl.latest
        if snap is None:
            t.append("no data yet", "dim italic")
            t.truncate(width * 8)
            return t
        gpus = snap.get("gpus") or []
        if not gpus:
            st = snap.get("gpu_status") or {}
            t.append(f"GPU {st.get('state', '?')}: {st.get('message', '')}\n", warn)
        for gpu in gpus:
            line = gpu_line(gpu)
            t.append(line)
            t.append(" " + self._trend(cl, f"gpu{gpu['index']}.util", now, min(40, width - len(line) - 1)) + "\n", ok)
        frac, figures, unified = memory_fraction(snap)
        tag = " unified" if unified else ""
        self._bar(t, "Mem ", frac, figures, width, len(tag))
        t.append(tag + "\n", "italic bold" if unified else "")
        if gpus and not unified and figures.endswith(" GPU"):  # discrete GPUs: the host's own RAM too
            self._bar(t, "RAM ", *host_fraction(snap), width, 0)
            t.append("\n")
        for_models = snap["host"]["memory"].get("models_available_bytes")
        if for_models is not None and (
            unified or not gpus
        ):  # what a launch may still take (MemAvailable less the reserve); a discrete GPU's models live in its own memory
            t.append("    for models ", "dim")
            t.append(fmt.size(for_models) + "\n", bad if for_models < 0 else "")
        noise = snap.get("noise") or {}
        t.append("Noise ", "dim")
        t.append(f"{noise['index']:.0f}/100 ({noise.get('source', 'none')})" if noise.get("index") is not None else "n/a (no input)")
        cpu = snap["host"]["cpu"].get("percent")
        t.append(f"   CPU {fmt.pct(cpu)}\n")
        cs = snap.get("containers_status") or {}
        containers = snap.get("containers") or []
        if cs.get("state") == "ok":
            running = [x for x in containers if x.get("state") == "running"]
            models = sorted({x["model"] for x in running if x.get("model")})
            t.append(f"Containers {len(running)}/{len(containers)} running")
            t.append((f"  models: {', '.join(models)}" if models else "") + "\n")
        else:
            t.append(f"Containers {cs.get('state', 'n/a')}: {cs.get('message', '')}\n", "dim")
        if alerts:
            for a in alerts[:3]:
                t.append(f"! {a.message}\n", bad if a.severity == "critical" else warn)
            if len(alerts) > 3:
                t.append(f"  +{len(alerts) - 3} more\n", warn)
        else:
            t.append("no alerts", "dim")
        t.rstrip()
        self._built_clock = self._clock_key(now)
        return t
