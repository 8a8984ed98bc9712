"""The GPU processes table: grouped by container (host processes last), sortable, filterable.

Each group starts with a header row (its name and totals) that cannot be acted on; inside a group
rows follow the sort key, and groups follow the sum of it, so the biggest consumer is on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui import format as fmt

COLUMNS = [  # the figures first, so 80 columns show them; the command last
    ("pid", "PID"),
    ("user", "User"),
    ("gpu", "GPU"),
    ("used_gpu_memory_bytes", "GPU mem"),
    ("cpu_percent", "CPU%"),
    ("rss_bytes", "RSS"),
    ("age", "Age"),
    ("command", "Command"),
]
SORT_KEYS = [("used_gpu_memory_bytes", "GPU memory"), ("cpu_percent", "CPU"), ("rss_bytes", "RSS"), ("pid", "PID")]
HOST_GROUP = "host (no container)"


def group_name(row: dict[str, Any]) -> str:
    c = row.get("container")
    return f"container {c.get('name') or c.get('id')}" if isinstance(c, dict) else HOST_GROUP


def row_key(row: dict[str, Any]) -> str:
    return f"{row.get('pid')}@{row.get('gpu')}"


def matches(row: dict[str, Any], needle: str) -> bool:
    c = row.get("container") or {}
    hay = f"{row.get('pid')} {row.get('user') or ''} {row.get('name') or ''} {row.get('command') or ''} {c.get('name') or ''} {c.get('id') or ''}"
    return needle in hay.lower()


def grouped(rows: list[dict[str, Any]], key: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """[(group, rows)], largest first by ``key`` (rows with no figure last); the host group last."""

    def value(r: dict[str, Any]) -> float:
        v = r.get(key)
        return float(v) if isinstance(v, (int, float)) else -1.0

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(group_name(r), []).append(r)
    reverse = key != "pid"
    for members in groups.values():
        members.sort(key=value, reverse=reverse)
    order = sorted(groups, key=lambda g: (g == HOST_GROUP, -sum(max(0.0, value(r)) for r in groups[g]) if reverse else min(value(r) for r in groups[g])))
    return [(g, groups[g]) for g in order]


def total(rows: list[dict[str, Any]], key: str) -> float | None:
    """The sum of a figure over rows; None when no row has it (shown n/a, never 0)."""
    known = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return sum(known) if known else None


class ProcessesTable(DataTable):
    DEFAULT_CSS = """
    ProcessesTable { height: 1fr; }
    """

    def __init__(self, clock: Callable[[], float] = time.time, **kw):
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.clock = clock
        self.sort_key = "used_gpu_memory_bytes"
        self.filter_text = ""
        self.busy: dict[int, str] = {}  # pid -> "TERM sent…"
        self.by_key: dict[str, dict[str, Any]] = {}
        self.shown = 0

    def on_mount(self) -> None:
        sortable = {k for k, _ in SORT_KEYS}
        for key, label in COLUMNS:  # room for the sort arrow: a column's width is set from its first label
            self.add_column(label + ("  " if key in sortable else ""), key=key)

    def cycle_sort(self) -> str:
        keys = [k for k, _ in SORT_KEYS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        return dict(SORT_KEYS)[self.sort_key]

    def selected(self) -> dict[str, Any] | None:
        """The process under the cursor; None on a group header or an empty table."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.by_key.get(str(key))

    def show(self, rows: list[dict[str, Any]]) -> None:
        now = self.clock()
        current = self.selected()
        at = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value if self.row_count else None
        needle = self.filter_text.lower()
        shown = [r for r in rows if not needle or matches(r, needle)]
        self.by_key = {}
        self.shown = len(shown)
        self.clear()
        for key, label in COLUMNS:
            col = self.columns.get(key)  # type: ignore[call-overload]
            if col is not None:
                col.label = Text(label + (" ▼" if key == self.sort_key else ""))
        for group, members in grouped(shown, self.sort_key):
            # the header row: the group's totals in the figure columns, its name in the command column
            head = Text(group, "bold")
            head.append(f"  {len(members)} process{'es' if len(members) != 1 else ''}", "dim")
            self.add_row(
                "",
                "",
                "",
                Text(fmt.size(total(members, "used_gpu_memory_bytes")), "bold", justify="right"),
                Text(fmt.pct(total(members, "cpu_percent"), 1), "bold", justify="right"),
                Text(fmt.size(total(members, "rss_bytes")), "bold", justify="right"),
                "",
                head,
                key=f"group:{group}",
            )
            for r in members:
                key = row_key(r)
                self.by_key[key] = r
                busy = self.busy.get(int(r.get("pid") or 0))
                start = r.get("start_time")
                self.add_row(
                    Text(str(r.get("pid")), justify="right"),
                    str(r.get("user") or "?")[:12],
                    Text(str(r.get("gpu", "")), justify="right"),
                    Text(fmt.size(r.get("used_gpu_memory_bytes")), justify="right"),
                    Text(fmt.pct(r.get("cpu_percent"), 1), justify="right"),
                    Text(fmt.size(r.get("rss_bytes")), justify="right"),
                    fmt.duration(max(0.0, now - start)) if isinstance(start, (int, float)) else "n/a",
                    Text(busy, "bold") if busy else Text(str(r.get("command") or r.get("name") or "?")),
                    key=key,
                )
        if current is not None and row_key(current) in self.by_key:
            self.move_cursor(row=self.get_row_index(row_key(current)))
        elif at is not None and str(at) in self.rows:  # a group header stays selected
            self.move_cursor(row=self.get_row_index(str(at)))
        elif self.row_count > 1:
            self.move_cursor(row=1)  # the first process, not its group's header
