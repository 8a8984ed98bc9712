"""Sparkline cells: values on a fixed scale as block characters, one row or several (TimeChart draws with these)."""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[float | None], width: int, lo: float, hi: float) -> str:
    """The last ``width`` values as block characters; a gap (None) is a blank cell."""
    if width <= 0:
        return ""
    cells = _cells(lo, hi)  # a card's sparkline is redrawn every frame, and most of its values were drawn before
    get = cells.get
    span = (hi - lo) or 1.0
    out = []
    for v in list(values)[-width:]:
        if v is None:
            out.append(" ")
            continue
        cell = get(v)
        if cell is None:
            cell = cells[v] = BLOCKS[int((min(hi, max(lo, v)) - lo) / span * (len(BLOCKS) - 1) + 0.5)]
        out.append(cell)
    return " " * (width - len(out)) + "".join(out)


_CELLS: dict[tuple[float, float], dict[float, str]] = {}
CELLS_KEPT = 512  # values remembered per scale (utilisation: ~100 values; memory or power: any)


def _cells(lo: float, hi: float) -> dict[float, str]:
    """value -> its cell on the scale lo..hi; bounded: cleared when it outgrows CELLS_KEPT."""
    cells = _CELLS.get((lo, hi))
    if cells is None or len(cells) > CELLS_KEPT:
        if len(_CELLS) > 64:  # scales too (a chart's scale follows its data)
            _CELLS.clear()
        cells = _CELLS[(lo, hi)] = {}
    return cells


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
