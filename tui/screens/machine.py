"""Machine detail: GPUs with history, CPU per core, memory, sensors, noise, disks, network."""

from __future__ import annotations

import time

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding

from tui import client as c
from tui.screens.base import BaseView
from tui.widgets.alerts_panel import AlertsPanel
from tui.widgets.conn_bar import stale_text, state_text
from tui.widgets.cpu_panel import CpuPanel
from tui.widgets.disks_panel import DisksPanel
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.history_charts import HOST_SERIES, LIVE_SPAN_S, HostCharts, Window, chart_height, gpu_series
from tui.widgets.kept import KeptGrid, KeptStatic, KeptVertical
from tui.widgets.memory_panel import MemoryPanel
from tui.widgets.network_panel import NetworkPanel
from tui.widgets.noise_panel import NoisePanel
from tui.widgets.offview import ViewScroll
from tui.widgets.sensors_panel import SensorsPanel
from tui.widgets.styles import set_border_text
from tui.widgets.throttle_panel import ThrottlePanel

# chart ranges: "live" is the client's own history (the last minutes, backfilled on connect);
# the others are read from the agent's history store at about 120 points
RANGES = [("live", 0), ("1 h", 3600), ("24 h", 86400), ("7 d", 7 * 86400)]
REFRESH_STORED_S = 30.0
THROTTLE_WINDOW_S = 600.0  # the timeline's span with live charts; a stored range uses its own
# The throttle events are fetched again when the snapshots' throttle reasons change (the client counts the changes),
# at least every REFRESH_EVENTS_S, and RECHECK_EVENTS_S after an answer that failed or did not yet show the reasons
# the snapshots did (the agent's store writes an event on its own thread). Between answers the timeline slides with
# the clock: an open event runs to now, as it would in a fresh answer. A fetch every 5 s, whatever happened, was a
# twentieth of the screen's CPU (a thread, a connection and a request).
REFRESH_EVENTS_S = 60.0
RECHECK_EVENTS_S = 5.0


def no_data_text(cl: c.AgentClient) -> str:
    """What the detail screen says before any data: waiting, or why this machine cannot be reached."""
    if cl.state in (c.CONNECTING, c.LIVE) and not cl.reason:
        return f"[dim]waiting for the first snapshot from {escape(cl.name)} ({escape(cl.target.via or cl.target.url)})…[/dim]"
    label, detail = state_text(cl, cl.clock())
    return f"[b $error]{escape(cl.name)}: {escape(label)}[/]\n{escape(cl.target.via or cl.target.url)}\n{escape(detail)}"


class MachineScreen(BaseView):
    view = "detail"
    BINDINGS = [Binding("h", "range", "Chart range")]

    def __init__(self, index: int):
        super().__init__()
        self.index = index
        self._gpu_indices: list[int] | None = None
        self._gpu_panels: list[GpuPanel] = []
        self.range_index = 0
        self._stored: dict[str, list[tuple[float, float | None]]] | None = None
        self._stored_at = 0.0
        self._events: tuple[list, float, float, float] | None = None  # (events, from, to, the client's clock when answered)
        self._events_due = 0.0  # monotonic time of the next fetch, changes or not
        self._events_cue: int | None = None  # the client's throttle_changes at the last fetch

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        # the widgets every frame updates, kept as composed: a query per widget per frame was ~7 % of the update
        self.alerts, self.gpu_status = AlertsPanel(id="alerts"), KeptStatic("", id="gpu-status")
        self.host_charts, self.panels = HostCharts(id="host-charts"), KeptGrid(id="panels")
        self.cpu, self.memory, self.noise = CpuPanel(id="cpu"), MemoryPanel(id="memory"), NoisePanel(id="noise")
        self.sensors, self.disks, self.network = SensorsPanel(id="sensors"), DisksPanel(id="disks"), NetworkPanel(id="network")
        self.throttle = ThrottlePanel(id="throttle")
        with ViewScroll(id="detail"):  # panels below the fold repaint when scrolled to (tui/widgets/offview.py)
            yield self.alerts
            yield self.gpu_status
            snap = self.client.latest
            # the GPUs known now are composed with the screen: mounting them after the first paint cost a second layout
            self._gpu_indices = [g["index"] for g in (snap or {}).get("gpus") or []] if snap else None
            self._gpu_panels = [GpuPanel(i) for i in self._gpu_indices or []]
            self.gpu_box = KeptVertical(id="gpus", classes="-multi" if len(self._gpu_panels) > 1 else "")
            with self.gpu_box:
                yield from self._gpu_panels
            yield self.host_charts
            with self.panels:
                yield from (self.cpu, self.memory, self.noise, self.sensors, self.disks, self.network)
            yield self.throttle
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
        if not self.app.is_running:  # built off-stage and mounted as the app shuts down: its children are gone
            return
        self.throttle.display = False  # until the agent reports an event
        self.query_one("#detail").focus()  # arrows / PgUp / PgDn scroll at once (80x24 needs it)

    def update_view(self) -> None:
        super().update_view()
        cl = self.client
        wide = self.size.width >= 140
        self.set_class(wide, "-wide")
        self.alerts.show(self.sd.alerts[self.index or 0])
        snap = cl.latest
        self.panels.display = snap is not None  # no data: one message, not six empty boxes
        if snap is None:
            self.set_text(self.gpu_status, no_data_text(cl))
            return
        gs = snap.get("gpu_status") or {}
        stale = f"[b $warning]STALE[/] [$warning]{escape(stale_text(cl, self.sd.clock()).removeprefix('STALE: '))}[/]\n" if cl.stale else ""
        if gs.get("state") != "ok":
            self.set_text(
                self.gpu_status,
                stale + f"[b $warning]GPUs {gs.get('state')}[/]: {gs.get('message', '')}" + (f"\n[dim]fix: {gs['fix']}[/dim]" if gs.get("fix") else ""),
            )
        else:
            self.set_text(
                self.gpu_status,
                stale + f"[dim]driver {gs.get('driver_version') or 'n/a'}  {gs.get('message', '')}{'  simulated' if snap.get('simulated') else ''}[/dim]",
            )
        gpus = snap.get("gpus") or []
        box = self.gpu_box
        indices = [g["index"] for g in gpus]
        if indices != self._gpu_indices:  # GPUs appeared or went: new panels, filled once mounted
            self._gpu_indices = indices
            box.remove_children()
            self._gpu_panels = [GpuPanel(i) for i in indices]
            box.mount_all(self._gpu_panels)
        box.set_class(len(gpus) > 1, "-multi")
        label, seconds = RANGES[self.range_index]
        if seconds and time.monotonic() - self._stored_at > REFRESH_STORED_S:
            self._stored_at = time.monotonic()
            self.run_worker(self._load_stored(indices, seconds), exit_on_error=False, group="history", exclusive=True)
        end = self.sd.clock()
        window = Window(end - (seconds or LIVE_SPAN_S), end, self._stored if seconds else None)
        rows = chart_height(self.size.height)
        for panel, gpu in zip(self._gpu_panels, gpus, strict=False):
            panel.show(cl, gpu, self.size.width, window, rows)
            set_border_text(panel, subtitle=f"charts: {label} (h)")
        charts = self.host_charts
        charts.set_class(wide, "-wide")
        set_border_text(charts, subtitle=f"charts: {label} (h)")
        for chart in charts.charts:
            chart.set_rows(rows)
        charts.show(cl, window)
        host = snap["host"]
        self.cpu.show(host["cpu"])
        self.memory.show(snap)
        self.noise.show(snap.get("noise") or {})
        self.sensors.show(host)
        self.disks.show(host)
        self.network.show(cl)
        if cl.throttle_changes != self._events_cue or time.monotonic() >= self._events_due:
            self._events_cue, self._events_due = cl.throttle_changes, time.monotonic() + REFRESH_EVENTS_S
            expect = {(gpu, reason) for gpu, reasons in cl.throttle_active.items() for reason in reasons}
            self.run_worker(self._load_events(seconds or THROTTLE_WINDOW_S, expect), exit_on_error=False, group="events", exclusive=True)
        throttle = self.throttle
        # shown once there is something to show, then kept for this range (its rows too): coming and going
        # with each event would lay the screen out every time
        # a failed fetch hides it (its "now" would stand still and an "ongoing" stay forever)
        throttle.display = self._events is not None and (throttle.display or bool(self._events[0]))
        if throttle.display and self._events:
            events, start, end, at = self._events
            moved = cl.clock() - at
            throttle.show((events, start + moved, end + moved))

    def action_range(self) -> None:
        self.range_index = (self.range_index + 1) % len(RANGES)
        self._stored, self._stored_at = None, 0.0
        self._reset_timeline()
        label = RANGES[self.range_index][0]
        self.sd.notify_replacing("chart-range", f"charts: {label}" + ("" if label == "live" else " (from the agent's history)"), timeout=2)  # h h h: one toast
        if self.live_view:
            self.update_view()

    def _reset_timeline(self) -> None:
        """Another range: the timeline follows it, its rows start again, hidden until its events say otherwise."""
        self._events_due = 0.0
        self._events = None
        throttle = self.throttle
        throttle.forget()
        throttle.display = False

    async def _load_stored(self, indices: list[int], seconds: float) -> None:
        names = [s.stored for i in indices for s in gpu_series(i)] + [s.stored for s in HOST_SERIES]
        try:
            self._stored = await self.client.stored_points(names, seconds)
        except Exception as exc:  # an old agent without /api/v1/history, or the network: say so, keep live charts
            self.notify(f"history unavailable: {exc}", severity="warning", timeout=4)
            self.range_index, self._stored = 0, None
            self._reset_timeline()  # back to live: not the stored range's rows
        if self.live_view:
            self.update_view()

    async def _load_events(self, seconds: float, expect: set[tuple[int, str]] | None = None) -> None:
        """``expect``: the (GPU, reason) pairs the snapshots showed throttling when this was asked; an answer whose
        open events differ is asked again soon."""
        try:
            events, start, end = await self.client.throttle_events(seconds)
        except Exception:  # an agent without /api/v1/events (older) or history off: no timeline, no noise
            self._events = None
            self._events_due = min(self._events_due, time.monotonic() + RECHECK_EVENTS_S)
        else:
            self._events = (events, start, end, self.client.clock())
            if expect is not None and {(e.get("gpu"), e.get("reason")) for e in events if e.get("end") is None} != expect:
                self._events_due = min(self._events_due, time.monotonic() + RECHECK_EVENTS_S)
        if not (self.live_view and self._events):
            return
        if self.throttle.display and self.client.state == c.LIVE and not self.client.stale:
            return  # the next frame, within a second, draws it in the same pass as the rest: not a pass (and a whole update) of its own
        self.update_view()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")
        if self.live_view:
            self.update_view()
