"""GPU processes on one machine (key p): who holds the GPU, grouped by container; k / K signal one.

The list comes from GET /api/v1/processes, reloaded every RELOAD_S while the screen is shown
(the stream's frames carry only pid, name and GPU memory). Both signals ask first; a TERM that
had no effect is said on screen, with why (a container's main process ignores it) and what to do.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from tui.client import ApiFailure
from tui.screens.base import BaseView
from tui.screens.confirm import ConfirmScreen
from tui.screens.filtering import TableFilter
from tui.widgets.processes_table import SORT_KEYS, ProcessesTable

RELOAD_S = 2.0


class ProcessesScreen(TableFilter, BaseView):
    table_type = ProcessesTable
    view = "processes"
    BINDINGS = [
        Binding("k", "signal('TERM')", "SIGTERM"),
        Binding("K", "signal('KILL')", "SIGKILL"),
        Binding("slash", "filter", "Filter"),
        Binding("S", "sort", "Sort"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, index: int, processes: list[dict[str, Any]] | None = None):
        super().__init__()
        self.index = index
        self.processes: list[dict[str, Any]] = processes or []
        self.error = ""
        self.outcome = ""  # the last signal's result when it needs saying (TERM ignored)
        self._fetch = processes is None

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static("", id="notice")
        yield Input(placeholder="filter by pid, user, command, container (enter to apply, esc to clear)", id="filter")
        yield ProcessesTable(self.sd.clock, id="processes")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        super().on_mount()
        self.query_one(ProcessesTable).focus()
        if self._fetch:
            self.action_reload()
            self.set_interval(RELOAD_S, self.action_reload)

    def action_reload(self) -> None:
        if self.live_view:
            self.run_worker(self._load(), exclusive=True, exit_on_error=False, group="processes")

    async def _load(self) -> None:
        try:
            body = await self.client.processes()
            self.processes = list((body or {}).get("processes") or [])
            self.error = ""
        except ApiFailure as exc:
            self.error = "this agent does not list GPU processes (GET /api/v1/processes: 404); update it" if exc.status == 404 else exc.detail
        except Exception as exc:  # not connected, timed out: say it, keep the last list
            self.error = str(exc) or type(exc).__name__
        if self.live_view:
            self.update_view()

    def update_view(self) -> None:
        super().update_view()
        table = self.query_one(ProcessesTable)
        table.show(self.processes)
        lines = []
        if self.error:
            lines.append(f"[$warning]processes: {escape(self.error)}[/]")
        denied = self.client.control_denied_reason()
        if denied and self.client.scope == "read":
            lines.append(f"[$warning]k / K disabled[/]: {escape(denied)}")
        if self.outcome:
            lines.append(self.outcome)
        count = f"{table.shown} of {len(self.processes)}" if table.filter_text else str(len(self.processes))
        lines.append(f"[dim]{count} GPU process{'es' if len(self.processes) != 1 else ''} · sorted by {dict(SORT_KEYS)[table.sort_key]} (S)[/dim]")
        self.set_text("#notice", "\n".join(lines))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "signal" and self.is_mounted and self.client.control_denied_reason():
            return None  # shown disabled in the footer; the notice says why
        return True

    def action_signal(self, sig: str) -> None:
        denied = self.client.control_denied_reason()
        if denied:
            self.notify(denied, title=f"cannot send SIG{sig}", severity="warning")
            return
        row = self.query_one(ProcessesTable).selected()
        if row is None:
            self.notify("no process selected (a group's header row holds none)", severity="warning")
            return
        what = f"pid [b]{row['pid']}[/b] ({escape(str(row.get('name') or row.get('command') or '?'))[:40]})"
        cont = row.get("container")
        where = f" in container [b]{escape(str(cont.get('name')))}[/b]" if isinstance(cont, dict) else ""
        deaf = " As its container's main process it ignores SIGTERM unless it handles it." if row.get("container_main") else ""
        question = {
            "TERM": f"Send SIGTERM to {what}{where}? It may save its work and exit, or ignore it.{deaf}",
            "KILL": f"SIGKILL {what}{where}? It ends at once, with no chance to clean up.",
        }[sig]
        self.app.push_screen(ConfirmScreen(question, f"SIG{sig}"), lambda ok: self._run(row, sig) if ok else None)

    def _run(self, row: dict[str, Any], sig: str) -> None:
        self.query_one(ProcessesTable).busy[int(row["pid"])] = f"SIG{sig} sent…"
        self.update_view()
        self.run_worker(self._send(row, sig), exit_on_error=False, group="signals")

    async def _send(self, row: dict[str, Any], sig: str) -> None:
        pid = int(row["pid"])
        try:
            answer = await self.client.signal_process(pid, sig, start_time=row.get("start_time"))
            result, detail = answer.get("result"), str(answer.get("detail") or "")
            if result == "still_running":
                self.outcome = f"[b $warning]SIG{sig} had no effect[/]: {escape(detail)}" + ("  [dim](K sends SIGKILL)[/dim]" if sig != "KILL" else "")
                self.notify(detail, title=f"SIG{sig}: pid {pid} still running", severity="warning", timeout=12)
            else:
                self.outcome = ""
                self.notify(detail, title=f"SIG{sig} pid {pid}")
        except ApiFailure as exc:
            self.notify(exc.detail, title=f"SIG{sig} pid {pid} refused", severity="error", timeout=12)
        if self.live_view:
            self.query_one(ProcessesTable).busy.pop(pid, None)
            self.action_reload()
