"""Time-indexed charts: x is wall time, so an outage is a gap, with a value axis and a time axis.

A chart spans ``span`` seconds across its plot columns, up to the column of wall time that holds now
(``anchored``); each column holds the highest sample that falls in it. Columns narrower than the
sample interval are bridged between two samples that are close together (at most ``GAP_FACTOR``
intervals apart), so only a real hole in the data — an agent restart, a lost link, a 25 s pause —
leaves blank columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from itertools import islice
from statistics import median
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from tui.widgets.framed import FramedWidget
from tui.widgets.spark import spark_rows
from tui.widgets.styles import CachedComponentStyles, line_strip, repaint_changed

if TYPE_CHECKING:
    from tui.client import History

Point = tuple[float, float | None]  # (unix time, value; None: the metric was n/a)
GAP_FACTOR = 3.0  # samples further apart than this many intervals are drawn with a gap between
GUTTER = 8  # value-axis labels left of the plot
BOLD, PLAIN, NOTE, PEAK = Style(bold=True), Style(), Style(dim=True, italic=True), Style(dim=True)


INTERVAL_TAIL = 32  # the last samples whose spacing gives a series' interval


def sample_interval(points: Sequence[Point]) -> float:
    """The usual spacing of ``points`` (median of the last ones), 1 s when unknown."""
    tail = [p[0] for p in points[-INTERVAL_TAIL:]]
    diffs = [b - a for a, b in zip(tail, tail[1:], strict=False) if b > a]
    return median(diffs) if diffs else 1.0


def window_points(history: History, key: str, start: float, now: float) -> list[Point]:
    """The samples of ``key`` that ``bucket()`` looks at for a window from ``start`` to ``now``: the window, the
    gap it bridges before it, and the tail its interval comes from (so the interval is the one the whole history
    gives), read from the newest end instead of copying every sample held, each chart each frame."""
    interval = sample_interval(history.points(key, since=now, at_least=INTERVAL_TAIL))
    return history.points(key, since=start - GAP_FACTOR * interval, at_least=INTERVAL_TAIL)


def bucket(points: Sequence[Point], start: float, end: float, cols: int, interval: float | None = None, now: float | None = None) -> list[float | None]:
    """One value per column (the column's highest sample), None where there is no data; the last sample is carried
    to the right edge unless the data stopped (more than its gap before ``now``, by default ``end``)."""
    if cols <= 0 or end <= start:
        return []
    gap_s = GAP_FACTOR * (interval or sample_interval(points))
    out: list[float | None] = [None] * cols
    prev = _fold(points, start, (end - start) / cols, end, gap_s, out, None)
    _to_now(out, prev, end if now is None else now, gap_s)
    return out


_Prev = tuple[int, float, float | None] | None  # (column, ts, value) of the last point seen


def _fold(points: Iterable[Point], start: float, step: float, end: float, gap_s: float, out: list[float | None], prev: _Prev) -> _Prev:
    """Put ``points`` (in time order, after ``prev``) into their columns; returns the last point seen."""
    cols = len(out)
    for ts, v in points:
        if ts < start - gap_s or ts > end:
            continue
        k = min(cols - 1, int((ts - start) // step)) if ts >= start else -1
        if v is not None and k >= 0:
            cur = out[k]
            out[k] = v if cur is None else max(cur, v)
        if prev is not None and prev[2] is not None and v is not None and ts - prev[1] <= gap_s:
            for j in range(max(0, prev[0] + 1), k):  # bridge columns narrower than the interval
                if out[j] is None:
                    out[j] = prev[2]
        prev = (k, ts, v)
    return prev


def _to_now(out: list[float | None], prev: _Prev, now: float, gap_s: float) -> None:
    if prev is not None and prev[2] is not None and now - prev[1] <= gap_s:  # up to now, unless the data stopped
        for j in range(max(0, prev[0] + 1), len(out)):
            out[j] = prev[2]


def anchored(start: float, end: float, cols: int) -> tuple[float, float]:
    """The window moved forward to the next column boundary of wall time: a column then always holds the
    same seconds, so a sample changes the newest column only and the plot shifts once a column, instead of
    every column's samples moving a little with each frame."""
    if cols <= 0 or end <= start:
        return start, end
    step = (end - start) / cols
    edge = (math.floor(end / step) + 1) * step
    return edge - (end - start), edge


class Buckets:
    """``bucket()`` kept between frames: while the window stays on its columns and the samples only grow at the
    end (and fall off the front of a full history, before the window), a frame goes through its new samples
    only (it bucketed the whole history, nine charts a frame)."""

    def __init__(self) -> None:
        # ((start, end, cols, gap_s), the samples — a list the caller hands over and does not change —, columns before _to_now, last point seen)
        self._kept: tuple | None = None

    def values(self, points: Sequence[Point], start: float, end: float, cols: int, now: float) -> list[float | None]:
        """``bucket(points, start, end, cols, now=now)``: the last sample carried to the right edge if ``now`` (the
        window's end may lie up to a column ahead of it, see ``anchored``) is within the gap it bridges."""
        if cols <= 0 or end <= start or not points:
            self._kept = None
            return bucket(points, start, end, cols, now=now)
        gap_s = GAP_FACTOR * sample_interval(points)
        key = (start, end, cols, gap_s)
        kept = self._kept
        if kept is not None and kept[0] != key:
            kept = self._moved(kept, key)
        new = self._new_since(kept[1], points, start - gap_s) if kept is not None else None
        if kept is not None and new is not None:
            out, prev = kept[2], _fold(islice(points, new, None), start, (end - start) / cols, end, gap_s, kept[2], kept[3])
        else:  # another window, a resize, or samples that changed in the middle (a reconnect's backfill): all of them
            out = [None] * cols
            prev = _fold(points, start, (end - start) / cols, end, gap_s, out, None)
        self._kept = (key, points, out, prev)
        done = out.copy()
        _to_now(done, prev, now, gap_s)
        return done

    @staticmethod
    def _moved(kept: tuple, key: tuple[float, float, int, float]) -> tuple | None:
        """The kept columns moved to a window that is the kept one moved on by whole columns (the plot moving a
        column, every ~7 s): each column still holds the same seconds, so the old columns are the new ones less those
        that left on the left, and the new ones on the right start empty — what folding every sample again gives
        (a point before the window counts as column -1 either way). None when the window is another one."""
        (ostart, oend, ocols, ogap), opoints, out, prev = kept
        start, end, cols, gap_s = key
        if (ocols, ogap) != (cols, gap_s) or not opoints or opoints[-1][0] >= oend:
            return None  # another size or interval, or a sample the kept fold left out as past its window's end
        step = (end - start) / cols
        shift = round((start - ostart) / step)
        if not 0 < shift < cols or abs((end - start) - (oend - ostart)) > 1e-9 * step or abs(start - ostart - shift * step) > 1e-6 * step:
            return None
        moved = out[shift:] + [None] * shift
        return (key, opoints, moved, None if prev is None else (prev[0] - shift, prev[1], prev[2]))

    @staticmethod
    def _new_since(old: Sequence[Point], points: Sequence[Point], before: float) -> int | None:
        """Where the samples ``old`` did not have start in ``points``, if ``points`` is ``old`` less some of its
        first samples (all older than ``before``: they were never in a column) plus new ones; None otherwise."""
        last = old[-1]
        i = len(points) - 1
        while i >= 0 and points[i][0] > last[0]:  # back over the new samples
            i -= 1
        dropped = len(old) - 1 - i
        if i < 0 or points[i] != last or dropped < 0 or old[dropped] != points[0]:
            return None  # a sample inserted or changed: the count from the end no longer lines up
        if dropped and not all(p[0] < before for p in islice(old, dropped)):
            return None  # what fell off the front may have been drawn (_fold skips only what is older than ``before``)
        return i + 1


def duration(seconds: float) -> str:
    """A short axis label: 30s, 5m, 2h30m, 7d."""
    s = int(round(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 and s < 600 else "")
    if s < 2 * 86400:
        return f"{s // 3600}h" + (f"{(s % 3600) // 60}m" if s % 3600 >= 60 else "")
    return f"{s // 86400}d" + (f"{(s % 86400) // 3600}h" if s % 86400 >= 3600 else "")


@lru_cache(maxsize=64)  # nine charts draw the same axis every frame
def time_axis(span: float, cols: int) -> str:
    """``-5m     -2m30s     now`` under ``cols`` columns: ticks at quarters (halves when narrow)."""
    ticks = 4 if cols >= 48 else (2 if cols >= 16 else 1)
    line = [" "] * cols
    for k in range(ticks + 1):
        label = "now" if k == ticks else "-" + duration(span * (1 - k / ticks))
        pos = round(k * cols / ticks)
        pos = max(0, min(cols - len(label), pos - (len(label) // 2 if 0 < k < ticks else 0)))
        if any(c != " " for c in line[max(0, pos - 1) : pos + len(label) + 1]):
            continue  # would touch its neighbour: leave it out
        line[pos : pos + len(label)] = label
    return "".join(line)


class TimeChart(FramedWidget, CachedComponentStyles):
    """A labelled chart: title row (label and the window's peak), plot rows with a value axis, a time axis.

    The title gives the highest value in the window, not the latest: the latest is on the same screen already
    (a GPU's figures above its charts, the CPU, memory, disk and network panels below the History box), the peak
    is what the chart adds (how close memory came to the top in the last 5 minutes or 24 hours), and it moves
    when the plot moves. A latest figure in every title changed nine rows a second on the detail screen and
    was about a twelfth of the client's CPU there.

    Drawn with the line API from strips built once per change: a frame that adds a sample folds that sample
    into its column (``Buckets``) and rebuilds the rows only when the columns or the scale changed, repainting
    the rows that differ; a sample that raises no column's peak costs the fold and a compare.
    """

    DEFAULT_CSS = """
    TimeChart { height: auto; width: 1fr; }
    TimeChart > .chart--line { color: $accent; }
    TimeChart > .chart--axis { color: $foreground-muted; }
    """
    COMPONENT_CLASSES = {"chart--line", "chart--axis"}

    def __init__(
        self,
        label: str,
        fmt_value: Callable[[float], str],
        lo: float = 0.0,
        hi: float | None = 100.0,
        fmt_peak: Callable[[float], str] | None = None,
        **kw,
    ):
        super().__init__(**kw)
        self.label = label
        self.fmt_value = fmt_value  # axis labels, e.g. "100%", "2.0M/s"
        self.fmt_peak = fmt_peak or fmt_value  # the title's peak, e.g. "98%", "1.3 MiB/s"
        self.lo, self.fixed_hi = lo, hi  # hi None: scale to the highest value shown
        self.points: Sequence[Point] = ()
        self.start = self.end = 0.0  # the span asked for, ending at now; drawn on the columns ``anchored`` gives
        self.hi = hi or 1.0
        self.rows = 5  # title + plot rows + time axis; set_rows changes it
        self._key: tuple | None = None
        self._built: tuple[tuple, list[list[tuple[str, Style]]], list[Strip]] | None = None
        self._drawn: tuple | None = None  # what the built lines were drawn from: columns, scale, span, size, theme
        self._base: Style | None = None  # the widget style the built strips were drawn under
        self._buckets = Buckets()

    def set_rows(self, rows: int) -> None:
        if rows != self.rows:
            self.rows = rows
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # height: auto -> the rows asked for
        return self.rows

    def show(self, points: Sequence[Point], start: float, end: float, hi: float | None = None) -> None:
        """New data; repaints only when what it would draw changed (same samples, same column: nothing)."""
        cols = max(1, self.size.width - GUTTER)
        step = (end - start) / cols if end > start else 1.0
        last = points[-1] if points else None
        key = (len(points), last, points[0][0] if points else None, int(end // step), hi)  # a new column: the plot moves
        if key == self._key:
            return
        self._key = key
        self.points, self.start, self.end = points, start, end
        if hi is not None:
            self.fixed_hi = hi
        before = self._built
        if before is None or not self.is_mounted or self.size.width <= 0:
            self.refresh()
            return
        # Build now and repaint only the rows that differ: a sample that raises a peak moves the title's figure and
        # the newest column, and a whole-widget refresh would repaint every row (and its border and axis).
        lines = self._lines()[0]
        old = before[1]
        if len(old) != len(lines) or self._built is None or before[0][1:] != self._built[0][1:]:  # not the same size or theme: all of it
            self.refresh()
            return
        if lines is not old:  # the same list: nothing drawn changed
            repaint_changed(self, old, lines)

    def _lines(self) -> tuple[list[list[tuple[str, Style]]], list[Strip]]:
        width, height = self.size.width, self.size.height
        key = (self._key, width, height, self.app.theme)
        if self._built is not None and self._built[0] == key:
            return self._built[1], self._built[2]
        cols = max(1, width - GUTTER)
        start, end = anchored(self.start, self.end, cols)  # here, where the width is known (a show can come before layout)
        values = self._buckets.values(self.points, start, end, cols, self.end)
        seen = [v for v in values if v is not None]
        peak = max(seen) if seen else None
        hi = self.fixed_hi if self.fixed_hi is not None else (1.0 if peak is None else peak) * 1.1 or 1.0  # all zero: 0 to 1
        self.hi = hi = max(hi, self.lo + 1e-9)
        base = self.visual_style.rich_style  # cached per style change; DOMNode.rich_style walks every ancestor per call
        drawn = (values, hi, bool(self.points), self.end - self.start, key[1:], base)
        if self._built is not None and self._drawn == drawn:  # a sample that raised no column: the same rows
            self._built = (key, *self._built[1:])
            return self._built[1], self._built[2]
        self._drawn = drawn
        axis = self.get_component_rich_style("chart--axis")
        line = self.get_component_rich_style("chart--line")
        title = [(f"{self.label} ", BOLD)]
        if peak is None:
            title.append((" no data in this range" if self.points else " no data yet", NOTE))
        else:
            title += [("peak ", PEAK), (self.fmt_peak(peak), PLAIN)]
        lines = [title]
        plot_rows = max(1, height - 2)
        for i, row in enumerate(spark_rows(values, cols, self.lo, hi, plot_rows)):
            label = self.fmt_value(hi) if i == 0 else (self.fmt_value(self.lo) if i == plot_rows - 1 else "")
            lines.append([(f"{label:>{GUTTER - 2}} ▕"[-GUTTER:], axis), (row, line)])
        if height >= 3:
            lines.append([(" " * GUTTER + time_axis(self.end - self.start, cols), axis)])
        # a new sample changes the title and the newest column: rows drawn the same keep their strip
        old = self._built if self._built is not None and self._built[0][1:] == key[1:] and self._base == base else None
        strips = [
            old[2][y]
            if old is not None and y < len(old[1]) and old[1][y] == parts
            else line_strip([Segment(t, st) for t, st in parts], width, base, base or None)
            for y, parts in enumerate(lines)
        ]
        self._built, self._base = (key, lines, strips), base
        return lines, strips

    def render_line(self, y: int) -> Strip:
        strips = self._lines()[1]
        return strips[y] if 0 <= y < len(strips) else Strip.blank(self.size.width, self.visual_style.rich_style)

    def render(self) -> Text:
        """The chart as text (what render_line draws), for tests and debugging."""
        text = Text()
        for i, parts in enumerate(self._lines()[0]):
            if i:
                text.append("\n")
            for part, style in parts:
                text.append(part, style)
        return text
