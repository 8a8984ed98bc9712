"""Memory and swap bars; on a unified-memory machine (GB10) says the GPU shares it."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui import format as fmt


class MemoryPanel(Widget):
    DEFAULT_CSS = """
    MemoryPanel { height: auto; border: round $primary; padding: 0 1; }
    MemoryPanel > .mem--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"mem--bar"}

    def __init__(self, **kw):
        super().__init__(**kw)
        self.snap: dict | None = None
        self.border_title = "Memory"

    def show(self, snap: dict) -> None:
        self.snap = snap
        self.refresh(layout=True)

    def render(self) -> Text:
        if self.snap is None:
            return Text("no data", "dim")
        host = self.snap["host"]
        unified = any((g.get("memory") or {}).get("unified") for g in self.snap.get("gpus") or [])
        width = max(10, self.size.width)
        style = self.get_component_rich_style("mem--bar")
        t = Text()
        for label, m in (("RAM ", host["memory"]), ("Swap", host["swap"])):
            figures = f" {fmt.size(m['used_bytes'])}/{fmt.size(m['total_bytes'])} {m['percent']:.0f}%"
            t.append(label + " ", "dim")
            if label == "Swap" and not m["total_bytes"]:
                t.append("no swap\n", "dim italic")
                continue
            t.append(fmt.bar(m["percent"] / 100, max(4, width - len(figures) - 6)), style)
            t.append(figures + "\n")
        if unified:
            t.append("unified", "bold italic")
            t.append(": the GPU shares this RAM (GPU memory = RAM used)", "dim")
        t.rstrip()
        return t
