"""A one-line sparkline on a fixed scale, with its label and current value."""

from __future__ import annotations

from collections.abc import Sequence

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


def spark_rows(values: Sequence[float | None], width: int, lo: float, hi: float, rows: int) -> list[str]:
    """Like spark_text, ``rows`` cells high: the top row first."""
    if rows <= 1:
        return [spark_text(values, width, lo, hi)]
    vals = list(values)[-width:] if width > 0 else []
    span = (hi - lo) or 1.0
    steps = rows * 8
    levels = [None if v is None else int((min(hi, max(lo, v)) - lo) / span * steps + 0.5) for v in vals]
    out = []
    for r in range(rows - 1, -1, -1):
        line = []
        for level in levels:
            if level is None:
                line.append(" ")
                continue
            cell = level - r * 8
            line.append("█" if cell >= 8 else (BLOCKS[cell - 1] if cell > 0 else (" " if r else BLOCKS[0])))
        out.append(" " * (width - len(line)) + "".join(line))
    return out


class Spark(Widget):
    DEFAULT_CSS = """
    Spark { height: 1; width: 1fr; }
    Spark.-tall { height: 3; }
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
        rows = spark_rows(self.values, width, self.lo, self.hi, max(1, self.size.height))
        text = Text()
        for i, row in enumerate(rows):
            last = i == len(rows) - 1
            text.append(label if last else " " * len(label), "dim")
            text.append(row, line_style)
            text.append(value if last else " " * len(value), "bold")
            if not last:
                text.append("\n")
        return text
