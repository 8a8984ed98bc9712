"""A container's logs: the last lines, then following live until the container stops."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import RichLog, Static

from tui.client import ApiFailure
from tui.screens.base import BaseView


class LogsScreen(BaseView):
    view = "logs"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("f", "toggle_follow", "Follow on/off"), Binding("e", "end", "End")]

    def __init__(self, index: int, ref: str, name: str, tail: int = 200):
        super().__init__()
        self.index, self.ref, self.name_, self.tail = index, ref, name, tail
        self.follow = True

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static(f"logs of [b]{self.name_}[/b]  (following; f: pause scrolling)", id="logs-title")
        yield RichLog(id="log", max_lines=5000, wrap=False, highlight=False, markup=False)
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.run_worker(self._load(), exclusive=True, exit_on_error=False, group="logs")

    async def _load(self) -> None:
        log = self.query_one(RichLog)
        title = self.query_one("#logs-title", Static)
        try:
            for line in await self.client.container_logs(self.ref, self.tail):
                log.write(line)
        except ApiFailure as exc:
            log.write(f"-- cannot read logs: {exc.detail}")
            return
        try:
            await self.client.follow_logs(self.ref, log.write, tail=0)
            title.update(f"logs of [b]{self.name_}[/b]  (stream ended)")
        except Exception as exc:  # noqa: BLE001 - any failure is shown, never crashes the app
            title.update(f"logs of [b]{self.name_}[/b]  [$warning](live follow unavailable: {str(exc)[:120]})[/]")

    def action_toggle_follow(self) -> None:
        log = self.query_one(RichLog)
        log.auto_scroll = not log.auto_scroll

    def action_end(self) -> None:
        self.query_one(RichLog).scroll_end(animate=False)
