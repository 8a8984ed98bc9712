"""Machine detail: GPUs with history, CPU per core, memory, sensors, noise, disks, network."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Static

from tui.screens.base import BaseView
from tui.widgets.alerts_panel import AlertsPanel
from tui.widgets.cpu_panel import CpuPanel
from tui.widgets.disks_panel import DisksPanel
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.memory_panel import MemoryPanel
from tui.widgets.network_panel import NetworkPanel
from tui.widgets.noise_panel import NoisePanel
from tui.widgets.sensors_panel import SensorsPanel
from tui.widgets.throttle_panel import ThrottlePanel


# chart ranges: "live" is the client's own history (the last minutes, backfilled on connect);
# the others are read from the agent's history store at about 120 points
RANGES = [("live", 0), ("1 h", 3600), ("24 h", 86400), ("7 d", 7 * 86400)]
REFRESH_STORED_S = 30.0
THROTTLE_WINDOW_S = 600.0  # the timeline's span with live charts; a stored range uses its own
REFRESH_EVENTS_S = 5.0


class MachineScreen(BaseView):
    view = "detail"
    BINDINGS = [Binding("h", "range", "Chart range")]

    def __init__(self, index: int):
        super().__init__()
        self.index = index
        self._gpu_indices: list[int] | None = None
        self._gpu_panels: list[GpuPanel] = []
        self.range_index = 0
        self._stored: dict[str, list] | None = None
        self._stored_at = 0.0
        self._events: tuple[list, float, float] | None = None
        self._events_at = -REFRESH_EVENTS_S

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        with VerticalScroll(id="detail"):
            yield AlertsPanel(id="alerts")
            yield Static("", id="gpu-status")
            yield Vertical(id="gpus")
            with Grid(id="panels"):
                yield CpuPanel(id="cpu")
                yield MemoryPanel(id="memory")
                yield NoisePanel(id="noise")
                yield SensorsPanel(id="sensors")
                yield DisksPanel(id="disks")
                yield NetworkPanel(id="network")
            yield ThrottlePanel(id="throttle")
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(ThrottlePanel).display = False  # until the agent reports an event
        self.query_one("#detail").focus()  # arrows / PgUp / PgDn scroll at once (80x24 needs it)

    def update_view(self) -> None:
        super().update_view()
        cl = self.client
        wide = self.size.width >= 140
        self.set_class(wide, "-wide")
        self.query_one(AlertsPanel).show(self.sd.alerts[self.index or 0])
        snap = cl.latest
        if snap is None:
            self.set_text("#gpu-status", "[dim]waiting for the first snapshot…[/dim]")
            return
        gs = snap.get("gpu_status") or {}
        if gs.get("state") != "ok":
            self.set_text("#gpu-status", f"[b $warning]GPUs {gs.get('state')}[/]: {gs.get('message', '')}" + (f"\n[dim]fix: {gs['fix']}[/dim]" if gs.get("fix") else ""))
        else:
            self.set_text("#gpu-status", f"[dim]driver {gs.get('driver_version') or 'n/a'}  {gs.get('message', '')}{'  simulated' if snap.get('simulated') else ''}[/dim]")
        gpus = snap.get("gpus") or []
        box = self.query_one("#gpus", Vertical)
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
        for panel, gpu in zip(self._gpu_panels, gpus):
            panel.show(cl, gpu, self.size.width, tall=self.size.height >= 40, stored=self._stored if seconds else None)
            panel.border_subtitle = f"charts: {label} (h)"
        host = snap["host"]
        self.query_one(CpuPanel).show(host["cpu"])
        self.query_one(MemoryPanel).show(snap)
        self.query_one(NoisePanel).show(snap.get("noise") or {})
        self.query_one(SensorsPanel).show(host)
        self.query_one(DisksPanel).show(host)
        self.query_one(NetworkPanel).show(cl)
        if time.monotonic() - self._events_at >= REFRESH_EVENTS_S:
            self._events_at = time.monotonic()
            self.run_worker(self._load_events(seconds or THROTTLE_WINDOW_S), exit_on_error=False, group="events", exclusive=True)
        panel = self.query_one(ThrottlePanel)
        panel.display = bool(self._events and self._events[0])  # shown once there is something to show
        if panel.display:
            panel.show(self._events)

    def action_range(self) -> None:
        self.range_index = (self.range_index + 1) % len(RANGES)
        self._stored, self._stored_at = None, 0.0
        self._events_at = -REFRESH_EVENTS_S  # the timeline follows the chart range
        label = RANGES[self.range_index][0]
        self.sd.notify_replacing("chart-range", f"charts: {label}" + ("" if label == "live" else " (from the agent's history)"), timeout=2)  # h h h: one toast
        if self.live_view:
            self.update_view()

    async def _load_stored(self, indices: list[int], seconds: float) -> None:
        names = [f"gpu{i}.{k}" for i in indices for k in ("utilization_percent", "power_w", "temperature_c")]
        try:
            self._stored = await self.client.stored_history(names, seconds)
        except Exception as exc:  # an old agent without /api/v1/history, or the network: say so, keep live charts
            self.notify(f"history unavailable: {exc}", severity="warning", timeout=4)
            self.range_index, self._stored = 0, None
        if self.live_view:
            self.update_view()

    async def _load_events(self, seconds: float) -> None:
        try:
            self._events = await self.client.throttle_events(seconds)
        except Exception:  # an agent without /api/v1/events (older) or history off: no timeline, no noise
            self._events = None
        if self.live_view and self._events:
            self.update_view()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")
        if self.live_view:
            self.update_view()

