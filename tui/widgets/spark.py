"""A one-line sparkline on a fixed scale, with its label and current value."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widget import Widget

BLOCKS = "▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[float | None], width: int, lo: float, hi: float) -> str:
    """The last ``width`` values as block characters; a gap (None) is a blank cell."""
    if width <= 0:
        return ""
    vals = list(values)[-width:]
    span = (hi - lo) or 1.0
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
            continue
        level = int((min(hi, max(lo, v)) - lo) / span * (len(BLOCKS) - 1) + 0.5)
        out.append(BLOCKS[level])
    return " " * (width - len(out)) + "".join(out)


class Spark(Widget):
    DEFAULT_CSS = """
    Spark { height: 1; width: 1fr; }
    Spark > .spark--line { color: $accent; }
    """
    COMPONENT_CLASSES = {"spark--line"}

    def __init__(self, label: str, lo: float = 0.0, hi: float = 100.0, **kw):
        super().__init__(**kw)
        self.label = label
        self.lo, self.hi = lo, hi
        self.values: list[float | None] = []
        self.current = "n/a"

    def show(self, values: Sequence[float | None], current: str, hi: float | None = None) -> None:
        self.values = list(values)
        self.current = current
        if hi is not None:
            self.hi = hi
        self.refresh()

    def render(self) -> Text:
        label = f"{self.label:<6}"
        value = f" {self.current:>8}"
        width = max(0, self.size.width - len(label) - len(value))
        line_style = self.get_component_rich_style("spark--line")
        if self.values and all(v is None for v in self.values):
            return Text.assemble((label, "dim"), ("n/a".center(width), "dim italic"), value)
        return Text.assemble((label, "dim"), (spark_text(self.values, width, self.lo, self.hi), line_style), (value, "bold"))
