"""GPU throttle events as a timeline: one row per GPU and reason, a cell per slice of the window."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel

MAX_ROWS = 8
LABEL_W = 26


def timeline(events: list[dict[str, Any]], start: float, end: float, cells: int) -> list[tuple[str, str, float]]:
    """[(label, cells, seconds throttled in the window)], one per (GPU, reason); '█' where an event
    overlaps the slice, '·' elsewhere. An event still open (end null) runs to ``end``."""
    cells = max(cells, 1)
    span = max(end - start, 1e-9)
    rows: dict[tuple[int, str], list[Any]] = {}
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


class ThrottlePanel(TextPanel):
    """Shows ``(events, start, end)`` from GET /api/v1/events?kind=throttle."""

    TITLE = "GPU throttle events"

    def build(self, width: int) -> Text:
        events, start, end = self.data
        t = Text()
        cells = max(width - LABEL_W - 9, 10)
        rows = timeline(events, start, end, cells)
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
        if ongoing:
            t.append(f"\n{ongoing} ongoing", f"bold {self.app.current_theme.warning}")
        return t
