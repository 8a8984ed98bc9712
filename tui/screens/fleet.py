"""The fleet table: one row per machine (for 10+ machines, where cards no longer fit), sortable.

``t`` on the overview opens it and ``t`` here goes back to the cards; Enter opens the machine under
the cursor. A frame updates only that machine's changed cells; rows are rebuilt only when the sort
order changes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui import client as c
from tui import format as fmt
from tui.messages import OpenMachine
from tui.screens.base import BaseView
from tui.widgets.conn_bar import ICONS

# (key, header); numeric columns sort busiest / hottest first
COLUMNS = [
    ("name", "machine"),
    ("util", "GPU util"),
    ("temp", "temp"),
    ("power", "power"),
    ("models", "for models"),
    ("containers", "containers"),
    ("status", "status"),
]
NUMERIC = {"util", "temp", "power", "models", "containers"}


def fleet_row(client: c.AgentClient) -> dict[str, tuple[Any, str]]:
    """(sort value, cell text) per column; the GPU figures are the busiest / hottest GPU's."""
    snap = client.latest or {}
    gpus = [g for g in snap.get("gpus") or [] if g.get("status") != "error"]

    def peak(key: str) -> float | None:
        vals = [g[key] for g in gpus if g.get(key) is not None]
        return max(vals) if vals else None

    util, temp = peak("utilization_gpu_percent"), peak("temperature_c")
    power = sum(g["power_w"] for g in gpus if g.get("power_w") is not None) if gpus else None
    models = ((snap.get("host") or {}).get("memory") or {}).get("models_available_bytes")
    containers = snap.get("containers") or []
    running = sum(1 for x in containers if x.get("state") == "running")
    status = client.state + (" STALE" if client.stale else "")
    return {
        "name": (client.target.name.lower(), client.target.name),
        "util": (util, fmt.pct(util)),
        "temp": (temp, fmt.num(temp, " °C")),
        "power": (power, fmt.num(power, " W")),
        "models": (models, fmt.size(models)),
        "containers": (running if snap else None, f"{running}/{len(containers)} running" if snap else fmt.NA),
        "status": (client.state, f"{ICONS.get(client.state, '?')} {status}"),
    }


class FleetScreen(BaseView):
    view = "fleet"
    index = None
    BINDINGS = [
        Binding("t", "app.view('overview')", "Cards"),
        Binding("S", "sort", "Sort"),
        Binding("enter", "open", "Open", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_key = "name"
        self.sort_reverse = False
        self._order: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="overview-title")
        table: DataTable = DataTable(id="fleet", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label + "  ", key=key)  # room for the sort arrow
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(DataTable).focus()

    def action_sort(self, key: str | None = None) -> None:
        """``S``: the next column (numbers busiest first); a header click on the sorted column reverses it."""
        keys = [k for k, _ in COLUMNS]
        if key is None:
            key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
            self.sort_reverse = key in NUMERIC
        elif key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_reverse = key in NUMERIC
        self.sort_key = key
        self.update_view()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.action_sort(str(event.column_key.value))

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key is not None:
                self.post_message(OpenMachine(int(key)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenMachine(int(str(event.row_key.value))))

    def update_view(self) -> None:
        clients = self.sd.clients
        live = sum(1 for cl in clients if cl.state == c.LIVE)
        self.query_one("#overview-title", Static).update(f"[b]sparkdeck[/b]  {live}/{len(clients)} live  [dim]fleet table (t: cards, S: sort)[/dim]")
        rows = [fleet_row(cl) for cl in clients]
        known = [i for i in range(len(rows)) if rows[i][self.sort_key][0] is not None]
        known.sort(key=lambda i: (rows[i][self.sort_key][0], rows[i]["name"][0]), reverse=self.sort_reverse)
        order = known + [i for i in range(len(rows)) if i not in known]  # n/a last, either way
        table = self.query_one(DataTable)
        if order != self._order:  # a new order: rebuild the rows (the cursor stays on its machine)
            current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
            table.clear()
            for i in order:
                table.add_row(*(rows[i][k][1] for k, _ in COLUMNS), key=str(i))
            self._order = order
            if current is not None:
                table.move_cursor(row=table.get_row_index(current))
        else:  # same order: only the cells that changed
            for i in order:
                for k, _ in COLUMNS:
                    if table.get_cell(str(i), k) != rows[i][k][1]:
                        table.update_cell(str(i), k, rows[i][k][1])
        arrow = "▼" if self.sort_reverse else "▲"
        for key, label in COLUMNS:
            table.columns[key].label = Text(label + (f" {arrow}" if key == self.sort_key else ""))  # type: ignore[index]

    def tick(self) -> None:  # no connection bar here: the status column says it
        pass

    def machine_changed(self, index: int) -> None:
        if self.live_view:
            self.update_view()
