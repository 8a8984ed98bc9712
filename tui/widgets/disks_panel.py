"""Mounted filesystems with usage bars, plus disk I/O rates."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui import format as fmt


class DisksPanel(Widget):
    DEFAULT_CSS = """
    DisksPanel { height: auto; border: round $primary; padding: 0 1; }
    DisksPanel > .disk--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"disk--bar"}

    def __init__(self, **kw):
        super().__init__(**kw)
        self.host: dict | None = None
        self.border_title = "Disks"

    def show(self, host: dict) -> None:
        self.host = host
        self.refresh(layout=True)

    def render(self) -> Text:
        if self.host is None:
            return Text("no data", "dim")
        io = self.host.get("disk_io") or {}
        t = Text()
        t.append(f"read {fmt.rate(io.get('read_bytes_s'))}  write {fmt.rate(io.get('write_bytes_s'))}\n", "dim")
        width = max(20, self.size.width)
        style = self.get_component_rich_style("disk--bar")
        for d in self.host.get("disks") or []:
            figures = f" {fmt.size(d['used_bytes'])}/{fmt.size(d['total_bytes'])} {d['percent']:.0f}%"
            mount = d["mount"][:14].ljust(15)
            t.append(mount, "dim")
            t.append(fmt.bar(d["percent"] / 100, max(4, width - len(mount) - len(figures) - 2)), style)
            t.append(figures + "\n")
        t.rstrip()
        return t
