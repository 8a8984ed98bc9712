"""GPU throttle events as a timeline: one row per GPU and reason, a cell per slice of the window.

The panel's height stays put while the screen shows one range: a row, once shown, stays (empty
when its events have left the window) and the count of ongoing events is in the border subtitle,
not a line of its own. A height change lays the whole detail screen out again (~35 ms of CPU
here), and the simulator's power-cap events, coming and going every few seconds, did that
every few seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel
from tui.widgets.styles import set_border_text

MAX_ROWS = 8
LABEL_W = 26


def timeline(events: list[dict[str, Any]], start: float, end: float, cells: int, keep: Iterable[tuple[int, str]] = ()) -> list[tuple[str, str, float]]:
    """[(label, cells, seconds throttled in the window)], one per (GPU, reason); '█' where an event
    overlaps the slice, '·' elsewhere. An event still open (end null) runs to ``end``. The (GPU, reason)
    pairs in ``keep`` have a row even with no event in the window."""
    cells = max(cells, 1)
    span = max(end - start, 1e-9)
    rows: dict[tuple[int, str], list[Any]] = {key: [["·"] * cells, 0.0] for key in keep}
    for e in events:
        a, b = max(e["start"], start), min(e["end"] if e.get("end") is not None else end, end)
        if b < a:
            continue
        row = rows.setdefault((e["gpu"], e["reason"]), [["·"] * cells, 0.0])
        first, last = int((a - start) / span * cells), int((b - start) / span * cells)
        for i in range(max(first, 0), min(last, cells - 1) + 1):
            row[0][i] = "█"
        row[1] += b - a
    return [(f"gpu{gpu} {reason}", "".join(r[0]), r[1]) for (gpu, reason), r in sorted(rows.items())]


def active_first(rows: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """More rows than fit: those with time in the window first, kept empty ones last (in order otherwise)."""
    return sorted(rows, key=lambda r: r[2] == 0) if len(rows) > MAX_ROWS else rows


class ThrottlePanel(TextPanel):
    """Shows ``(events, start, end)`` from GET /api/v1/events?kind=throttle."""

    TITLE = "GPU throttle events"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: set[tuple[int, str]] = set()  # the rows shown since the range was chosen: they keep their place

    def forget(self) -> None:
        """A new range: rows start again from its events."""
        self.seen.clear()

    def build(self, width: int) -> Text:
        events, start, end = self.data
        t = Text()
        cells = max(width - LABEL_W - 9, 10)
        self.seen.update((e["gpu"], e["reason"]) for e in events if e["start"] <= end and (e.get("end") is None or e["end"] >= start))
        rows = timeline(events, start, end, cells, self.seen)
        rows = active_first(rows)
        for label, bar, secs in rows[:MAX_ROWS]:
            t.append(label[: LABEL_W - 1].ljust(LABEL_W), "dim")
            t.append(bar, f"bold {self.app.current_theme.warning}")
            t.append(f" {fmt.duration(secs):>7}\n", "dim")
        if len(rows) > MAX_ROWS:
            t.append(f"+{len(rows) - MAX_ROWS} more\n", "dim")
        ongoing = sum(1 for e in events if e.get("end") is None)
        t.append(
            "time".ljust(LABEL_W) + f"-{fmt.duration(end - start)}".ljust(max(cells - 3, 1)) + "now", "dim"
        )  # a label, not spaces: wrapping strips leading blanks
        # in the border, not a line: a line that comes and goes would lay the screen out each time
        set_border_text(
            self, subtitle=Text.assemble((f" {ongoing} ongoing ", f"bold {self.app.current_theme.warning}")) if ongoing else ""
        )  # a span: compared with the theme
        return t
