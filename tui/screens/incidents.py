"""Incidents (key i): earlier runs of the agent that ended uncleanly, the likely cause, the last samples."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui import format as fmt
from tui.client import ApiFailure
from tui.incidents import PATH, details, when
from tui.screens.base import BaseView

SPARK = "▁▂▃▄▅▆▇█"
CAUSE_STYLE = {"memory": "$error", "temperature": "$warning", "unknown": "dim"}


def sparkline(values: list[float | None], width: int = 40, agg=min) -> str:
    """The samples squeezed into ``width`` cells (the last value in the last cell), each cell the
    ``agg`` of its samples (the low point of memory, the peak of a temperature); gaps are blank."""
    if not values:
        return ""
    step = max(1, -(-len(values) // width))
    cells = [values[max(0, i - step + 1) : i + 1] for i in range(len(values) - 1, -1, -step)][::-1]
    points = [agg((v for v in c if v is not None), default=None) for c in cells]
    known = [p for p in points if p is not None]
    if not known:
        return " " * len(points)
    lo, hi = min(known), max(known)
    span = (hi - lo) or 1.0
    return "".join(" " if p is None else SPARK[int((p - lo) / span * (len(SPARK) - 1))] for p in points)


class IncidentsScreen(BaseView):
    view = "incidents"
    BINDINGS = [Binding("g", "reload", "Reload")]

    def __init__(self, index: int, incidents: list[dict[str, Any]] | None = None):
        super().__init__()
        self.index = index
        self.incidents: list[dict[str, Any]] = incidents or []
        self.error = ""
        self._fetch = incidents is None
        self._count: int | None = None  # the hello's incident count behind the list shown

    def _hello_count(self) -> int | None:
        count = (self.client.hello or {}).get("incidents")
        return count if isinstance(count, int) else None

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static("", id="notice")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="incidents")
        yield Static("", id="incident-detail")
        yield self.footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("id", "#"), ("ended", "Ended (last sample)"), ("kind", "Kind"), ("cause", "Likely cause")):
            table.add_column(label, key=key)
        if self._fetch:
            self._count = self._hello_count()  # before the first update_view, which compares it
            self.action_reload()
        super().on_mount()
        table.focus()

    def action_reload(self) -> None:
        # the function, not a coroutine: an exclusive worker replaced before it starts leaves none unawaited
        self.run_worker(self._load, exclusive=True, exit_on_error=False, group="incidents")  # type: ignore[arg-type]  # mypy cannot solve textual's WorkType union for an async callable, which run_worker accepts

    async def _load(self) -> None:
        try:
            body = await self.client.request("GET", PATH)
            self.incidents = list((body or {}).get("incidents") or [])
            self.error = ""
        except ApiFailure as exc:
            self.error = "this agent keeps no incidents (GET /api/v1/incidents: 404)" if exc.status == 404 else exc.detail
        if self.live_view:
            self.update_view()

    def update_view(self) -> None:
        super().update_view()
        if self._fetch and self._hello_count() != self._count:  # the agent restarted and found a new one
            self._count = self._hello_count()
            self.action_reload()
        self.set_text("#notice", f"[$warning]incidents: {escape(self.error)}[/]" if self.error else "")
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for inc in self.incidents:
            table.add_row(
                str(inc.get("id")),
                when(inc.get("last_sample_ts") or inc.get("detected_at")),
                inc.get("kind", ""),
                inc.get("cause_text", ""),
                key=str(inc.get("id")),
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_detail()

    def selected(self) -> dict[str, Any] | None:
        key = self.cursor_key()
        return next((i for i in self.incidents if str(i.get("id")) == key), None)

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        inc = self.selected()
        detail = self.query_one("#incident-detail", Static)
        if inc is None:
            detail.update("" if self.error else "[dim]no incidents: every earlier run of the agent ended cleanly[/dim]")
            return
        style = CAUSE_STYLE.get(str(inc.get("cause")), "dim")
        lines = [f"[b]#{inc.get('id')} {escape(str(inc.get('kind')))}[/b]  [{style}]{escape(str(inc.get('cause_text')))}[/]"]
        lines += [escape(line) for line in details(inc)]
        samples = inc.get("samples") or []
        if samples:
            models = [s.get("models_available_bytes") for s in samples]
            hottest = [s.get("hottest_c") for s in samples]
            lines.append(f"for models  {sparkline(models)}  {fmt.size(models[-1])} at the end")
            lines.append(f"hottest     {sparkline(hottest, agg=max)}  {fmt.num(hottest[-1], ' °C')} at the end")
        detail.update("\n".join(lines))
