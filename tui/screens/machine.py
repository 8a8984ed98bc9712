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

    def update_view(self) -> None:
        super().update_view()
        cl = self.client
        wide = self.size.width >= 140
        self.set_class(wide, "-wide")
        self.query_one(AlertsPanel).show(self.sd.alerts[self.index or 0])
        snap = cl.latest
        status = self.query_one("#gpu-status", Static)
        if snap is None:
            status.update("[dim]waiting for the first snapshot…[/dim]")
            return
        gs = snap.get("gpu_status") or {}
        if gs.get("state") != "ok":
            status.update(f"[b $warning]GPUs {gs.get('state')}[/]: {gs.get('message', '')}" + (f"\n[dim]fix: {gs['fix']}[/dim]" if gs.get("fix") else ""))
        else:
            status.update(f"[dim]driver {gs.get('driver_version') or 'n/a'}  {gs.get('message', '')}{'  simulated' if snap.get('simulated') else ''}[/dim]")
        status.display = bool(gs)
        gpus = snap.get("gpus") or []
        box = self.query_one("#gpus", Vertical)
        panels = list(box.query(GpuPanel))
        if [p.gpu_index for p in panels] != [g["index"] for g in gpus]:
            box.remove_children()
            panels = [GpuPanel(g["index"]) for g in gpus]
            box.mount_all(panels)
            self.call_after_refresh(self.machine_changed, self.index or 0)
            return
        for panel, gpu in zip(panels, gpus):
            panel.show(cl, gpu, self.size.width)
        host = snap["host"]
        self.query_one(CpuPanel).show(host["cpu"])
        self.query_one(MemoryPanel).show(snap)
        self.query_one(NoisePanel).show(snap.get("noise") or {})
        self.query_one(SensorsPanel).show(host)
        self.query_one(DisksPanel).show(host)
        self.query_one(NetworkPanel).show(cl)

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")

