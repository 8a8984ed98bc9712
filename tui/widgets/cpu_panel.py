"""CPU: total, load, and one small bar per core, laid out to the panel's width."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui import format as fmt


class CpuPanel(Widget):
    DEFAULT_CSS = """
    CpuPanel { height: auto; border: round $primary; padding: 0 1; }
    CpuPanel > .cpu--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"cpu--bar"}
    CELL = 16  # "c12 ██████  99%" + gap

    def __init__(self, **kw):
        super().__init__(**kw)
        self.cpu: dict | None = None
        self.border_title = "CPU"

    def show(self, cpu: dict) -> None:
        self.cpu = cpu
        self.refresh(layout=True)

    def render(self) -> Text:
        cpu = self.cpu
        if cpu is None:
            return Text("no data", "dim")
        t = Text()
        t.append(f"total {fmt.pct(cpu.get('percent'))}", "bold")
        loads = [cpu.get("load_1"), cpu.get("load_5"), cpu.get("load_15")]
        t.append("   load " + " ".join(fmt.num(v, "", 2) for v in loads), "dim")
        t.append(f"   {cpu.get('count') or '?'} cores\n", "dim")
        cores = cpu.get("per_core_percent")
        if not cores:
            t.append("per-core figures n/a", "dim italic")
            return t
        cols = max(1, (self.size.width or 40) // self.CELL)
        bar_style = self.get_component_rich_style("cpu--bar")
        for i, v in enumerate(cores):
            t.append(f"{i:>3} ", "dim")
            t.append(fmt.bar(v / 100, 6), bar_style)
            t.append(f"{v:4.0f}%")
            t.append("\n" if (i + 1) % cols == 0 or i == len(cores) - 1 else " ")
        t.rstrip()
        return t
