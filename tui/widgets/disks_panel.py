"""Mounted filesystems with usage bars, plus disk I/O rates."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class DisksPanel(TextPanel):
    """Shows ``host`` disks and disk I/O."""

    DEFAULT_CSS = """
    DisksPanel > .disk--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"disk--bar"}
    TITLE = "Disks"

    def build(self, width: int) -> Text:
        io = self.data.get("disk_io") or {}
        t = Text()
        t.append(f"read {fmt.rate(io.get('read_bytes_s'))}  write {fmt.rate(io.get('write_bytes_s'))}\n", "dim")
        style = self.get_component_rich_style("disk--bar")
        for d in self.data.get("disks") or []:
            figures = f" {fmt.size(d['used_bytes'])}/{fmt.size(d['total_bytes'])} {d['percent']:.0f}%"
            mount = d["mount"][:14].ljust(15)
            t.append(mount, "dim")
            t.append(fmt.bar(d["percent"] / 100, max(4, width - len(mount) - len(figures))), style)
            t.append(figures + "\n")
        t.rstrip()
        return t
