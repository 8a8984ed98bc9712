"""Overview: one card per machine. Enter or click opens its detail."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.events import Resize
from textual.widgets import Static

from tui import client as c
from tui.screens.base import BaseView
from tui.widgets.machine_card import MachineCard


class OverviewScreen(BaseView):
    view = "overview"
    index = None
    BINDINGS = [
        Binding("down,right,j", "app.focus_next", "Next card", show=False),
        Binding("up,left,k", "app.focus_previous", "Previous card", show=False),
    ]

    _title = ""

    def compose(self) -> ComposeResult:
        live = sum(1 for cl in self.sd.clients if cl.state == c.LIVE)
        yield Static(f"sparkdeck  {live}/{len(self.sd.clients)} live", id="overview-title")
        with VerticalScroll(id="overview-scroll"):
            with Grid(id="cards"):
                for i, _ in enumerate(self.sd.clients):
                    yield MachineCard(i, self.sd.clock, id=f"card-{i}")
        yield self.footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_current()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.focus_current()

    def focus_current(self) -> None:
        cards = list(self.query(MachineCard))
        if cards:
            cards[min(self.sd.current, len(cards) - 1)].focus()

    def on_resize(self, event: Resize) -> None:
        cols = max(1, min(len(self.sd.clients), event.size.width // 56))
        self.query_one("#cards", Grid).styles.grid_size_columns = cols

    def update_title(self) -> None:
        live = sum(1 for cl in self.sd.clients if cl.state == c.LIVE)
        alerts = sum(len(a) for a in self.sd.alerts)
        title = f"[b]sparkdeck[/b]  {live}/{len(self.sd.clients)} live  " + (f"[$error]{alerts} alert(s)[/]" if alerts else "[dim]no alerts[/dim]")
        if title != self._title:  # a Static's update lays the screen out again: only when the words change
            self._title = title
            self.query_one("#overview-title", Static).update(title)

    def update_view(self) -> None:
        self.update_title()
        for i, cl in enumerate(self.sd.clients):
            self.query_one(f"#card-{i}", MachineCard).show((cl, self.sd.alerts[i]))

    def machine_changed(self, index: int) -> None:
        if self.live_view:  # only that machine's card
            self.update_title()
            self.query_one(f"#card-{index}", MachineCard).show((self.sd.clients[index], self.sd.alerts[index]))

    def tick(self) -> None:
        for card in self.query(MachineCard):
            card.tick()
