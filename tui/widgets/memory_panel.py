"""Memory and swap bars; on a unified-memory machine (GB10) says the GPU shares it."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class MemoryPanel(TextPanel):
    """Shows a whole snapshot's ``host.memory`` and ``host.swap`` (and whether the GPU shares it)."""

    DEFAULT_CSS = """
    MemoryPanel > .mem--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"mem--bar"}
    TITLE = "Memory"

    def build(self, width: int) -> Text:
        host = self.data["host"]
        unified = any((g.get("memory") or {}).get("unified") for g in self.data.get("gpus") or [])
        style = self.get_component_rich_style("mem--bar")
        t = Text()
        for label, m in (("RAM ", host["memory"]), ("Swap", host["swap"])):
            figures = f" {fmt.size(m['used_bytes'])}/{fmt.size(m['total_bytes'])} {m['percent']:.0f}%"
            t.append(label + " ", "dim")
            if label == "Swap" and not m["total_bytes"]:
                t.append("no swap\n", "dim italic")
                continue
            t.append(fmt.bar(m["percent"] / 100, max(4, width - len(figures) - 5)), style)
            t.append(figures + "\n")
        if unified:
            t.append("unified", "bold italic")
            t.append(": the GPU shares this RAM (GPU memory = RAM used)", "dim")
        t.rstrip()
        return t
