"""CPU: total, load, and one small bar per core, laid out to the panel's width."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class CpuPanel(TextPanel):
    """Shows ``host.cpu``."""

    DEFAULT_CSS = """
    CpuPanel > .cpu--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"cpu--bar"}
    TITLE = "CPU"
    CELL = 16  # "c12 ██████  99%" + gap

    def build(self, width: int) -> Text:
        cpu = self.data
        t = Text()
        t.append(f"total {fmt.pct(cpu.get('percent'))}", "bold")
        loads = [cpu.get("load_1"), cpu.get("load_5"), cpu.get("load_15")]
        t.append("   load " + " ".join(fmt.num(v, "", 2) for v in loads), "dim")
        t.append(f"   {cpu.get('count') or '?'} cores\n", "dim")
        cores = cpu.get("per_core_percent")
        if not cores:
            t.append("per-core figures n/a", "dim italic")
            return t
        cols = max(1, width // self.CELL)
        bar_style = self.get_component_rich_style("cpu--bar")
        for i, v in enumerate(cores):
            t.append(f"{i:>3} ", "dim")
            t.append(fmt.bar(v / 100, 6), bar_style)
            t.append(f"{v:4.0f}%")
            t.append("\n" if (i + 1) % cols == 0 or i == len(cores) - 1 else " ")
        t.rstrip()
        return t
