"""Figures' columns sit where Textual's grid put the ten figure widgets (``1fr`` columns, gutter 1), and a
figure too long for its cell is cut, never wrapped onto a row it does not have."""

from __future__ import annotations

from textual._resolve import resolve
from textual.css.scalar import Scalar
from textual.geometry import Size

from tui.widgets.figures import column_spans, fit


def test_column_spans_are_textuals_grid_columns():
    fr = Scalar.parse("1fr")
    for columns in (1, 2, 4, 5):
        for width in range(columns, 220):
            grid = resolve([fr] * columns, width, 1, Size(width, 1), Size(width, 1))
            assert column_spans(width, columns) == grid, (width, columns)


def test_fit_cuts_by_cells():
    assert fit("Power 45.3 W", 20) == "Power 45.3 W"
    assert fit("Power 45.3 W", 5) == "Power"
    assert fit("温度 77 °C", 3) == "温"  # a wide character takes two cells
    assert fit("", 0) == ""
