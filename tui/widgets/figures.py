"""Labelled figures in columns, one widget drawn line by line; a field the machine cannot report reads "n/a".

A GPU panel's ten figures were ten Static widgets: Textual renders every widget under the repainted area
on each frame and converts a changed Static through its Content path, so they were a fifth of the detail
screen's compositor time. Here a frame that moves two figures converts the lines holding them.

An n/a field keeps what a focusable widget per field gave: `tab` / `shift+tab` stop on each n/a field
(then leave the widget), hovering one shows its reason as a tooltip, and `a` says why for the field under
the cursor (the app asks ``focused_reason``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.strip import Strip

from tui.format import NA
from tui.widgets.framed import FramedWidget
from tui.widgets.styles import repaint_changed, text_strip

GUTTER = 1  # cells between columns
PAD_RIGHT = 2  # each field keeps two blank cells on its right
DIM, BOLD, ITALIC, NULL = Style(dim=True), Style(bold=True), Style(italic=True), Style()


def column_spans(width: int, columns: int, gutter: int = GUTTER) -> list[tuple[int, int]]:
    """(offset, width) of ``columns`` equal columns ``gutter`` apart in ``width`` cells, as Textual's grid
    places ``1fr`` columns (fractions accumulated, offsets floored), so the figures sit where they did."""
    unit = Fraction(max(0, width - gutter * (columns - 1)), columns)
    spans, at = [], Fraction(0)
    for _ in range(columns):
        start = at.__floor__()
        at += unit
        spans.append((start, at.__floor__() - start))
        at += gutter
    return spans


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells (a figure never wraps onto a row it does not have)."""
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width:
            break
        out += ch
    return out


class Figures(FramedWidget):
    DEFAULT_CSS = """
    Figures { height: auto; }
    Figures > .figures--na { color: $text-muted; }
    Figures > .figures--focus { background: $accent 30%; }
    """
    COMPONENT_CLASSES = {"figures--na", "figures--focus"}
    BINDINGS = [
        Binding("tab", "next_na", "Next n/a field", show=False),
        Binding("shift+tab", "previous_na", "Previous n/a field", show=False),
    ]

    def __init__(self, fields: Sequence[tuple[str, str]], full_rows: Sequence[tuple[str, str]] = (), columns: int = 4, **kw):
        """``fields``: (key, label) in columns, row by row; ``full_rows``: (key, label) each on a row of its own below."""
        super().__init__(**kw)
        self.fields, self.full_rows = list(fields), list(full_rows)
        self.labels = dict(self.fields + self.full_rows)
        self.columns = columns
        self.shown: dict[str, tuple[str | None, str | None]] = {}  # key -> (value, n/a reason); value None: n/a
        self.cursor: str | None = None  # the n/a field tab / a are on while focused
        self._lines: list[list[tuple[str, Style]]] = []  # per row: (text, style) parts, to find the rows that changed
        self._strips: dict[int, Strip] = {}
        self._strip_key: tuple | None = None  # (width, visual style) the strips were drawn for
        self._styles_memo: dict = {}  # the rows' styles under that visual style (see text_segments)
        self._hover: str | None = None  # the field under the mouse
        self._cell_key: tuple | None = None  # (theme, visual style) _cell was worked out for
        self._cell: tuple[Style, Style] = (NULL, NULL)

    # -- data --------------------------------------------------------------------------------------
    def show(self, values: dict[str, tuple[str | None, str | None]], columns: int | None = None) -> None:
        """``values``: key -> (value or None for n/a, reason); repaints only the rows that changed."""
        rows_before = self.row_count
        if columns is not None:
            self.columns = columns
        self.shown = dict(values)
        na = self.na_keys()
        self.can_focus = bool(na)  # `tab` reaches the n/a fields; `a` then says why (the tooltip needs a mouse)
        if self.cursor not in na:
            self.cursor = na[0] if na else None
        if self._hover is not None:  # the field under the mouse may have come back, or gone n/a
            self._set_tooltip(self.reason(self._hover))
        if self.row_count != rows_before:
            self._lines, self._strips, self._strip_key = [], {}, None  # drawn again at the new height
            self.refresh(layout=True)
            return
        self._redraw()

    def is_na(self, key: str) -> bool:
        value = self.shown.get(key, (None, None))[0]
        return value is None or value == NA

    def na_keys(self) -> list[str]:
        return [k for k, _ in self.fields + self.full_rows if k in self.shown and self.is_na(k)]

    def reason(self, key: str) -> str | None:
        """What the tooltip and `a` say for an n/a field; None for a field that has a value."""
        if key not in self.shown or not self.is_na(key):
            return None
        return f"{self.labels[key]}: not available on this machine — {self.shown[key][1] or 'not reported'}"

    def reasons(self) -> list[str]:
        return [r for k in self.na_keys() if (r := self.reason(k))]

    def focused_reason(self) -> str | None:
        return self.reason(self.cursor) if self.focused and self.cursor else None

    @property
    def focused(self) -> bool:
        """Whether the screen's focus is here: ``has_focus`` is set after this widget's own on_focus / on_blur
        run (Textual's handler is the base class's), so drawing from it there would draw the old state."""
        return self.is_attached and self.screen.focused is self

    def text(self, key: str) -> str:
        """A field as drawn: "Label value" (for tests)."""
        value = self.shown.get(key, (None, None))[0]
        return f"{self.labels[key]} {NA if self.is_na(key) else value}"

    # -- layout --------------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return -(-len(self.fields) // max(1, self.columns)) + len(self.full_rows)

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.row_count

    def cells(self, width: int) -> list[list[tuple[str, int, int]]]:
        """Per row: (key, x, cell width) of each field."""
        spans = column_spans(width, max(1, self.columns))
        rows = [
            [(key, *spans[i % self.columns]) for i, (key, _) in enumerate(self.fields[r : r + self.columns])] for r in range(0, len(self.fields), self.columns)
        ]
        return rows + [[(key, 0, width)] for key, _ in self.full_rows]

    def field_at(self, x: int, y: int) -> str | None:
        rows = self.cells(self.content_size.width)
        if not 0 <= y < len(rows):
            return None
        return next((key for key, x0, w in rows[y] if x0 <= x < x0 + w), None)

    # -- drawing -------------------------------------------------------------------------------------
    def _build(self, width: int) -> list[list[tuple[str, Style]]]:
        na_style, focus_style = self._cell_styles()
        focused = self.focused
        lines = []
        for row in self.cells(width):
            parts: list[tuple[str, Style]] = []
            at = 0
            for key, x, w in row:
                if x > at:
                    parts.append((" " * (x - at), NULL))
                na = self.is_na(key)
                cell = na_style if na else NULL
                if na and key == self.cursor and focused:
                    cell = cell + focus_style
                value = NA if na else str(self.shown.get(key, (None, None))[0])
                label = fit(f"{self.labels[key]} ", w - PAD_RIGHT)
                shown = fit(value, w - PAD_RIGHT - cell_len(label))
                used = cell_len(label) + cell_len(shown)
                parts += [(label, cell + DIM), (shown, cell + (ITALIC if na else BOLD)), (" " * (w - used), cell)]
                at = x + w
            lines.append(parts)
        return lines

    def _cell_styles(self) -> tuple[Style, Style]:
        """The n/a colour and the cursor's background as a widget of their own would get them, over this
        background: ``$text-muted`` is an ``auto`` colour (contrast text at 60 %), the cursor ``$accent`` at 30 %.
        A stale screen's text-opacity then dims the whole line once (the component style would carry it too,
        and a figure would be dimmed twice)."""
        key = (self.app.theme, self.visual_style)
        if self._cell_key == key:
            return self._cell
        background = self.background_colors[1]
        na = self.get_component_styles("figures--na")
        color = background.get_contrast_text(na.color.a) if na.auto_color else na.color
        cursor = background + self.get_component_styles("figures--focus").background
        self._cell_key, self._cell = key, (Style(color=(background + color).rich_color), Style(bgcolor=cursor.rich_color))
        return self._cell

    def _redraw(self) -> None:
        width = self.content_size.width
        if not self.is_mounted or width <= 0:
            self.refresh()
            return
        lines = self._build(width)
        old, self._lines = self._lines, lines
        if len(old) != len(lines):
            self._strips.clear()
            self.refresh()
            return
        repaint_changed(self, old, lines, self._strips)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.visual_style
        key = (width, style, self.app.theme)
        if key != self._strip_key:  # a new width, class or theme redraws every row
            self._strip_key, self._strips, self._styles_memo = key, {}, {}
            self._lines = self._build(width)
        strip = self._strips.get(y)
        if strip is None:
            if y >= len(self._lines):
                return Strip.blank(width, style.rich_style)
            strip = self._strips[y] = text_strip(Text.assemble(*self._lines[y]), self.app.console, width, style, self._styles_memo)
        return strip

    def render(self) -> Text:
        """The figures as text (what render_line draws), for tests and debugging."""
        return Text("\n").join(Text.assemble(*parts) for parts in self._build(max(1, self.content_size.width or self.size.width or 80)))

    # -- focus, keys, mouse --------------------------------------------------------------------------
    def _move(self, step: int) -> None:
        na = self.na_keys()
        at = na.index(self.cursor) + step if self.cursor in na else (0 if step > 0 else len(na) - 1)
        if not 0 <= at < len(na):  # past the last (first) n/a field: on to the next (previous) widget
            self.screen.focus_next() if step > 0 else self.screen.focus_previous()
            return
        self.cursor = na[at]
        self._redraw()

    def action_next_na(self) -> None:
        self._move(1)

    def action_previous_na(self) -> None:
        self._move(-1)

    def on_focus(self) -> None:
        """``shift+tab`` comes in at the last n/a field, ``tab`` (or a programmatic focus) at the first."""
        na = self.na_keys()
        if na:
            self.cursor = na[-1] if getattr(self.screen, "focus_move", 1) < 0 else na[0]
        self._redraw()

    def on_click(self, event: events.Click) -> None:
        key = self.field_at(event.x, event.y)
        if key in self.na_keys():  # the clicked n/a field is the one `a` explains
            self.cursor = key
            self._redraw()

    def on_blur(self) -> None:
        self._redraw()

    def _set_tooltip(self, text: str | None) -> None:
        if text != self.tooltip:  # the setter moves a showing tooltip to the mouse again: only on a change
            self.tooltip = text

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover = self.field_at(event.x, event.y)
        self._set_tooltip(self.reason(self._hover) if self._hover else None)

    def on_leave(self) -> None:
        self._hover = None
        self._set_tooltip(None)
