"""Containers on one machine: table, filter, start/stop/restart/remove, watch (notify its end), logs."""

from __future__ import annotations

import asyncio
import time

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from tui import serving
from tui.client import ApiFailure
from tui.messages import ActionFinished
from tui.screens.base import BaseView, forward_port
from tui.screens.confirm import ConfirmScreen
from tui.screens.filtering import TableFilter
from tui.widgets.containers_table import ContainersTable, state_text, summary

CONTROL = {"start", "stop", "restart", "remove"}


class ContainersScreen(TableFilter, BaseView):
    table_type = ContainersTable
    view = "containers"
    BINDINGS = [
        Binding("s", "container('start')", "Start"),
        Binding("x", "container('stop')", "Stop"),
        Binding("R", "container('restart')", "Restart"),
        Binding("D", "container('remove')", "Remove"),
        Binding("w", "container('watch')", "Watch"),
        Binding("l", "logs", "Logs"),
        Binding("f", "forward", "Forward port"),
        Binding("slash", "filter", "Filter"),
        Binding("S", "sort", "Sort"),
        Binding("V", "reverse_sort", "Reverse sort", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static("", id="notice")
        yield Input(placeholder="filter by name, image, state, model (enter to apply, esc to clear)", id="filter")
        yield ContainersTable(self.sd.clock, id="containers")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        super().on_mount()
        self.query_one(ContainersTable).focus()

    def update_view(self) -> None:
        super().update_view()
        snap = self.client.latest
        self.query_one(ContainersTable).show((snap or {}).get("containers") or [])
        self._notice()
        denied = self.client.control_denied_reason()
        if denied != getattr(self, "_bindings_for", ...):  # the footer is recomputed only when what check_action answers changes
            self._bindings_for = denied
            self.refresh_bindings()

    def _notice(self) -> None:
        cl = self.client
        snap = cl.latest
        cs = (snap or {}).get("containers_status") or {}
        lines = [f"[dim]{escape(summary((snap or {}).get('containers') or []))}[/dim]"] if cs.get("state") == "ok" else []
        if snap is not None and cs.get("state") != "ok":
            lines.append(f"[b $warning]containers {cs.get('state')}[/]: {cs.get('message', '')}" + (f"\n[dim]fix: {cs['fix']}[/dim]" if cs.get("fix") else ""))
        denied = cl.control_denied_reason()
        if denied and cl.scope == "read":
            lines.append(f"[$warning]actions disabled[/]: {denied}")
        row = self.query_one(ContainersTable).selected()
        if row is not None and row.get("serving"):  # the selected model server in full
            lines.append(escape(serving.full(str(row.get("name")), row["serving"])))
        self.set_text("#notice", "\n".join(lines))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._notice()  # the notice line follows the cursor to the selected server

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("container", "logs") and self.is_mounted and self.client.control_denied_reason():  # the agent serves logs to control tokens only
            return None  # shown disabled in the footer; the notice says why
        return True

    def action_container(self, what: str) -> None:
        denied = self.client.control_denied_reason()
        if denied:
            self.notify(denied, title=f"cannot {what}", severity="warning")
            return
        row = self.query_one(ContainersTable).selected()
        if row is None:
            self.notify("no container selected", severity="warning")
            return
        name = row.get("name") or row["id"][:12]
        if what in ("start", "watch"):  # watching restarts nothing: no need to confirm
            self._run(row, what)
            return
        running = row.get("state") == "running"
        question = {
            "stop": f"Stop container [b]{name}[/b]?",
            "restart": f"Restart container [b]{name}[/b]?",
            "remove": f"Remove container [b]{name}[/b]?" + (" It is [b]running[/b]: it will be force-removed." if running else ""),
        }[what]
        self.app.push_screen(ConfirmScreen(question, what.capitalize()), lambda ok: self._run(row, what) if ok else None)

    def _run(self, row: dict, what: str) -> None:
        table = self.query_one(ContainersTable)
        table.busy[str(row["id"])] = {"start": "starting…", "stop": "stopping…", "restart": "restarting…", "remove": "removing…", "watch": "watching…"}[what]
        self.update_view()
        self.run_worker(self._send(row, what), exit_on_error=False, group="actions")

    async def _send(self, row: dict, what: str) -> None:
        cid, name = str(row["id"]), row.get("name") or str(row["id"])[:12]
        params = {"force": True} if what == "remove" and row.get("state") == "running" else {}
        try:
            answer = await self.client.container_action(cid, what, **params)
            state = (answer or {}).get("state") if isinstance(answer, dict) else None
            done = "its end will be notified" if what == "watch" else (f"the agent answered: {state}" if state else "done")
            msg = ActionFinished(self.index or 0, f"{what} {name}", True, done)
        except ApiFailure as exc:
            msg = ActionFinished(self.index or 0, f"{what} {name}", False, exc.detail)
        if self.live_view:
            self.query_one(ContainersTable).busy.pop(cid, None)
        self.app.post_message(msg)  # to the app: this screen may be gone by now
        if msg.ok and what in ("start", "restart"):
            ended = await self._ended_soon(cid)
            if ended:  # "running" was true for a moment only: say what the row now shows
                self.app.post_message(ActionFinished(self.index or 0, f"{what} {name}", False, f"it is {ended} (it ended right after starting)"))

    async def _ended_soon(self, cid: str, wait_s: float = 3.0) -> str | None:
        """The stream's "exited (1) 0s ago" when the container ends within ``wait_s`` of its start; None if it keeps running."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            row = next((x for x in (self.client.latest or {}).get("containers") or [] if x.get("id") == cid), None)
            if row is not None and row.get("state") in ("exited", "dead"):
                return state_text(row, self.sd.clock())
        return None

    def action_reverse_sort(self) -> None:
        self.query_one(ContainersTable).reverse_sort()
        self.update_view()

    def action_logs(self) -> None:
        denied = self.client.control_denied_reason()
        if denied:
            self.notify(denied, title="cannot read logs", severity="warning")
            return
        row = self.query_one(ContainersTable).selected()
        if row is None:
            self.notify("no container selected", severity="warning")
            return
        from tui.screens.logs import LogsScreen

        self.app.push_screen(LogsScreen(self.index or 0, str(row["id"]), row.get("name") or str(row["id"])[:12]))

    def action_forward(self) -> None:
        row = self.query_one(ContainersTable).selected()
        ports = [port for p in (row or {}).get("ports") or [] if isinstance(p, dict) and (port := p.get("host_port"))]
        if row is None or not ports:
            self.notify("no container selected" if row is None else "this container publishes no port", severity="warning")
            return
        self.run_worker(forward_port(self, self.client, int(ports[0]), row.get("name") or str(row["id"])[:12]), exit_on_error=False, group="forward")
