"""Machine detail: GPUs with history, CPU per core, memory, sensors, noise, disks, network."""

from __future__ import annotations

from textual.app import ComposeResult
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


class MachineScreen(BaseView):
    view = "detail"

    def __init__(self, index: int):
        super().__init__()
        self.index = index
        self._gpu_indices: list[int] | None = None
        self._gpu_panels: list[GpuPanel] = []

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
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
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
        for panel, gpu in zip(self._gpu_panels, gpus):
            panel.show(cl, gpu, self.size.width, tall=self.size.height >= 40)
        host = snap["host"]
        self.query_one(CpuPanel).show(host["cpu"])
        self.query_one(MemoryPanel).show(snap)
        self.query_one(NoisePanel).show(snap.get("noise") or {})
        self.query_one(SensorsPanel).show(host)
        self.query_one(DisksPanel).show(host)
        self.query_one(NetworkPanel).show(cl)

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")
        if self.live_view:
            self.update_view()

