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


_CELLS: dict[tuple[float, float, int], dict] = {}
CELLS_KEPT = 512  # values remembered per scale (utilisation: ~100 values; memory or power: any)


def _cells(lo: float, hi: float, rows: int = 1) -> dict:
    """value -> what it draws on the scale lo..hi, ``rows`` high (one row: its cell; more: its column of cells);
    bounded: cleared when it outgrows CELLS_KEPT."""
    cells = _CELLS.get((lo, hi, rows))
    if cells is None or len(cells) > CELLS_KEPT:
        if len(_CELLS) > 64:  # scales too (a chart's scale follows its data)
            _CELLS.clear()
        cells = _CELLS[(lo, hi, rows)] = {}
    return cells


def spark_rows(values: Sequence[float | None], width: int, lo: float, hi: float, rows: int) -> list[str]:
    """Like spark_text, ``rows`` cells high: the top row first."""
    if rows <= 1:
        return [spark_text(values, width, lo, hi)]
    vals = list(values)[-width:] if width > 0 else []
    table = _columns(rows)
    gap = table[-1]
    # a value is a column of cells, drawn once per level and height and remembered per value on its scale; the rows
    # are those columns read across (nine charts a frame drew every cell of every row one at a time, for the one
    # column the newest sample moves)
    known = _cells(lo, hi, rows)
    get = known.get
    columns = [gap] * (width - len(vals))
    for v in vals:
        if v is None:
            columns.append(gap)
            continue
        column = get(v)
        if column is None:
            column = known[v] = table[int((min(hi, max(lo, v)) - lo) / ((hi - lo) or 1.0) * rows * 8 + 0.5)]
        columns.append(column)
    return ["".join(row) for row in zip(*columns, strict=True)] if columns else [""] * rows


_COLUMNS: dict[int, list[tuple[str, ...]]] = {}


def _columns(rows: int) -> list[tuple[str, ...]]:
    """The column of cells (top row first) for each level 0..rows*8 of a ``rows``-high chart, and last the gap's
    column; a handful of heights in use (4, 6, 8), so bounded by clearing past 16."""
    table = _COLUMNS.get(rows)
    if table is None:
        if len(_COLUMNS) > 16:
            _COLUMNS.clear()
        table = _COLUMNS[rows] = [tuple(_cell(level - r * 8, r) for r in range(rows - 1, -1, -1)) for level in range(rows * 8 + 1)]
        table.append((" ",) * rows)
    return table


def _cell(fill: int, row: int) -> str:
    """Row ``row``'s cell (0: the bottom) of a column filled ``fill`` eighths above that row's floor."""
    return "█" if fill >= 8 else (BLOCKS[fill - 1] if fill > 0 else (" " if row else BLOCKS[0]))
