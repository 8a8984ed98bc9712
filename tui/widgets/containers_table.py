"""The containers table: sortable (click a header or S), filterable, keeps the cursor on its row."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Self

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable

from tui import format as fmt
from tui import serving

COLUMNS = [  # (key, label): the figures first, so 80 columns show them; the image last
    ("name", "Name"),
    ("state", "State"),
    ("cpu_percent", "CPU%"),
    ("memory_bytes", "Memory"),
    ("gpu_memory_bytes", "GPU mem"),
    ("uptime", "Uptime"),
    ("ports", "Ports"),
    ("image", "Image"),
]
HEALTH = {"healthy": " ✓", "unhealthy": " ✗ unhealthy", "starting": " …"}


def started_at(cont: dict[str, Any]) -> float | None:
    for key in ("started_at", "started", "created"):
        v = cont.get(key)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str) and v:
            try:
                from datetime import datetime

                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}
_UP = re.compile(r"Up (?:(Less than a second)|About an? (\w+)|(\d+) (\w+?)s?\b)")


def status_age_s(status: str) -> float | None:
    """Seconds in Docker's own words ("Up 5 minutes", "Up About an hour"); None if not "Up ..."."""
    m = _UP.match(status)
    if m is None:
        return None
    if m.group(1):
        return 0.0
    if m.group(2):
        return _UNIT_S.get(m.group(2))
    unit = _UNIT_S.get(m.group(4))
    return None if unit is None else int(m.group(3)) * unit


def uptime(cont: dict[str, Any], now: float) -> float | None:
    """Seconds running: from a start/creation time when the row has one (the REST list), else
    from the engine's status text, which is what a snapshot frame carries."""
    if cont.get("state") != "running":
        return None
    start = started_at(cont)
    if start is not None:
        return max(0.0, now - start)
    return status_age_s(str(cont.get("status") or ""))


def uptime_text(cont: dict[str, Any], now: float) -> str:
    """The engine's "Up 5 minutes" when it has one (true start time), else since creation."""
    if cont.get("state") != "running":
        return ""
    status = str(cont.get("status") or "")
    if status.startswith("Up "):
        return status[3:].split(" (")[0]
    return fmt.duration(uptime(cont, now))


def state_text(cont: dict[str, Any], now: float) -> str:
    """ "exited (1) 3m ago" for an ended container (the agent sends its exit code and end time), else the state word."""
    state = str(cont.get("state", "?"))
    if cont.get("exit_code") is not None:
        state += f" ({cont['exit_code']})"
    if cont.get("finished_at") is not None and cont.get("state") in ("exited", "dead"):
        state += " " + fmt.ago(now - float(cont["finished_at"]))
    return state


def summary(containers: list[dict[str, Any]]) -> str:
    """The line above the table: how many run and have ended, and what the running ones use."""
    counts: dict[str, int] = {}
    for x in containers:
        counts[str(x.get("state"))] = counts.get(str(x.get("state")), 0) + 1
    words = [f"{counts.pop('running', 0)} running", f"{counts.pop('exited', 0)} exited"] + [f"{n} {state}" for state, n in sorted(counts.items())]
    running = [x for x in containers if x.get("state") == "running"]
    cpu = [x["cpu_percent"] for x in running if x.get("cpu_percent") is not None]
    gpu = [x["gpu_memory_bytes"] for x in running if x.get("gpu_memory_bytes") is not None]
    return f"{', '.join(words)}   CPU {fmt.pct(sum(cpu) if cpu else None, 1)}   GPU memory {fmt.size(sum(gpu) if gpu else None)}"


DESCENDING = ("cpu_percent", "memory_bytes", "gpu_memory_bytes", "uptime")  # figures: the busiest first


def sort_value(cont: dict[str, Any], key: str, now: float) -> Any:
    v: Any
    if key == "uptime":
        v = uptime(cont, now)
    elif key == "ports":
        v = fmt.ports(cont.get("ports"))
    else:
        v = cont.get(key)
    if v is None:
        return (1, 0, "")
    return (0, v, "") if isinstance(v, (int, float)) else (0, 0, str(v).lower())


def cell_width(cell: Any) -> int:
    """The cells a table cell takes (a Text, or a plain string)."""
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


class ContainersTable(DataTable):
    DEFAULT_CSS = """
    ContainersTable { height: 1fr; }
    """
    _rows_only = False  # while set, a whole-table refresh is left out (see _update_changed); DataTable refreshes in __init__

    def __init__(self, clock: Callable[[], float] = time.time, **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.clock = clock
        self.sort_key = "name"
        self.sort_reverse = False
        self.filter_text = ""
        self.busy: dict[str, str] = {}  # container id -> "stopping…"
        self.by_id: dict[str, dict[str, Any]] = {}
        # what the table shows now, so a frame that changes a few figures updates those cells only
        self._shown: dict[str, tuple] = {}  # container id -> its cells' key (see _cells)
        self._order: list[str] = []
        self._labels: dict[str, str] = {}
        self.rebuilds = 0  # full rebuilds (clear + add_row): rows came, went or moved

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def cycle_sort(self, key: str | None = None) -> None:
        keys = [k for k, _ in COLUMNS]
        if key is None:
            key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
            self.sort_reverse = key in DESCENDING
        elif key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_reverse = key in DESCENDING
        self.sort_key = key

    def reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.cycle_sort(str(event.column_key.value))
        self.show(list(self.by_id.values()))

    def selected(self) -> dict[str, Any] | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.by_id.get(str(key))

    def show(self, containers: list[dict[str, Any]]) -> None:
        now = self.clock()
        current = self.selected()
        needle = self.filter_text.lower()
        shown = [
            x for x in containers if not needle or needle in f"{x.get('name', '')} {x.get('image', '')} {x.get('state', '')} {x.get('model') or ''}".lower()
        ]
        keyed = [(sort_value(x, self.sort_key, now), x) for x in shown]
        known = sorted((kx for kx in keyed if kx[0][0] == 0), key=lambda kx: kx[0], reverse=self.sort_reverse)
        shown = [x for _, x in known] + [x for k, x in keyed if k[0] == 1]  # n/a last, whichever the direction
        self.by_id = {str(x["id"]): x for x in shown}
        rows = {cid: self._cells(x, now) for cid, x in self.by_id.items()}
        arrow = "▼" if self.sort_reverse else "▲"
        labels = {key: label + (f" {arrow}" if key == self.sort_key else "") for key, label in COLUMNS}
        if list(rows) == self._order and labels == self._labels:
            self._update_changed(rows)  # same rows in the same order: only the cells that changed
            return
        self._rebuild(rows, labels)
        if current is not None and str(current["id"]) in self.by_id:
            self.move_cursor(row=self.get_row_index(str(current["id"])))

    def _cells(self, x: dict[str, Any], now: float) -> tuple:
        """One row's cells, and the cheap key they are compared by (the raw strings and the state's style)."""
        state = self.busy.get(str(x["id"])) or state_text(x, now)
        label = state + HEALTH.get(str(x.get("health")), "")
        if x.get("serving"):  # a model server: its own figures next to its state
            label += f"  {serving.short(x['serving'])}"
        return (
            (str(x.get("name", "?"))[:28], x.get("model") or ""),
            (label, fmt.theme_style(self.app.current_theme, str(x.get("state")), "dim")),
            fmt.pct(x.get("cpu_percent"), 1),
            fmt.size(x.get("memory_bytes")),
            fmt.size(x.get("gpu_memory_bytes")),
            uptime_text(x, now),
            fmt.ports(x.get("ports")),
            x.get("image") or "",
        )

    @staticmethod
    def _render_cells(cells: tuple) -> list[Any]:
        (name_s, model), (label, style), cpu, mem, gpu, up, ports, image = cells
        name = Text(name_s)
        if model:
            name.append(f" ◆{model}", "bold")
        return [name, Text(label, style), Text(cpu, justify="right"), Text(mem, justify="right"), Text(gpu, justify="right"), up, ports, image]

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        if self._rows_only and not regions and not layout and not recompose:
            return self  # update_cell's repaint of the whole table: _update_changed repaints the changed rows instead
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _update_changed(self, rows: dict[str, tuple]) -> None:
        """Update the cells that changed and repaint their rows, not the table: DataTable.update_cell repaints
        every visible row, 20 rows of cells once a second for a few CPU figures. A column that may change width
        (a cell wider than it, or its widest cell narrower) repaints the whole table as before."""
        keys = [k for k, _ in COLUMNS]
        changed: list[str] = []
        whole = False
        self._rows_only = True
        try:
            for cid, cells in rows.items():
                old = self._shown.get(cid)
                if old == cells:
                    continue
                rendered = self._render_cells(cells)
                for i, (new_c, old_c) in enumerate(zip(cells, old or (None,) * len(cells), strict=False)):
                    if new_c != old_c:
                        width = self.columns[keys[i]].content_width  # type: ignore[index]
                        before, after = cell_width(self.get_cell(cid, keys[i])), cell_width(rendered[i])
                        whole = whole or after > width or (before == width and after < width)
                        self.update_cell(cid, keys[i], rendered[i], update_width=True)
                self._shown[cid] = cells
                changed.append(cid)
        finally:
            self._rows_only = False
        if whole:
            self.refresh()
            return
        for cid in changed:
            self.refresh_row(self.get_row_index(cid))

    def _rebuild(self, rows: dict[str, tuple], labels: dict[str, str]) -> None:
        """Rows came, went or moved (or the sort changed): the table anew. clear() also resets the cursor."""
        self.clear()
        for cid, cells in rows.items():
            self.add_row(*self._render_cells(cells), key=cid)
        self.rebuilds += 1
        self._shown, self._order = dict(rows), list(rows)
        for key, label in labels.items():
            col = self.columns.get(key)  # type: ignore[call-overload]
            if col is not None:
                col.label = Text(label)
        self._labels = labels
