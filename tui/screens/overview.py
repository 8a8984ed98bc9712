"""Overview: one card per machine. Enter or click opens its detail."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.events import DescendantFocus, Resize
from textual.widgets import Input, Static

from tui import client as c
from tui.screens.base import BaseView
from tui.screens.filtering import TableFilter
from tui.widgets.machine_card import MachineCard
from tui.widgets.offview import ViewScroll


class OverviewScreen(TableFilter, BaseView):
    view = "overview"
    index = None
    filter_text = ""
    BINDINGS = [
        Binding("down,right,j", "app.focus_next", "Next card", show=False),
        Binding("up,left,k", "app.focus_previous", "Previous card", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def _filtered_table(self) -> MachineCard | Grid:
        """Where focus goes after filtering: the first card still shown."""
        shown = [card for card in self.query(MachineCard) if card.display]
        return shown[0] if shown else self.query_one("#cards", Grid)

    def apply_filter(self, text: str) -> None:
        self.filter_text = text

    def _card_matches(self, i: int) -> bool:
        cl = self.sd.clients[i]
        return self.matches_filter(cl.target.name, cl.target.url, getattr(cl, "hostname", None), cl.state)

    _title = ""
    _cards: list[MachineCard] = []  # the cards by machine index, kept from compose: a DOM query per frame and per tick was ~1 % of the fleet overview's CPU

    def compose(self) -> ComposeResult:
        live = sum(1 for cl in self.sd.clients if cl.state == c.LIVE)
        yield Static(f"sparkdeck  {live}/{len(self.sd.clients)} live", id="overview-title")
        yield Input(placeholder="filter machines by name, URL, hostname, state (enter to apply, esc to clear)", id="filter")
        self._cards = [MachineCard(i, self.sd.clock, id=f"card-{i}") for i, _ in enumerate(self.sd.clients)]
        with ViewScroll(id="overview-scroll"), Grid(id="cards"):  # cards below the fold repaint when scrolled to
            yield from self._cards
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        super().on_mount()
        self.focus_current()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.focus_current()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, MachineCard):
            self.sd.card_focused()

    def focus_current(self) -> None:
        cards = [card for card in self.query(MachineCard) if card.display]
        if cards:
            current = next((card for card in cards if card.id == f"card-{self.sd.current}"), cards[0])  # the filter may hide it
            current.focus()

    def on_resize(self, event: Resize) -> None:
        cols = max(1, min(len(self.sd.clients), event.size.width // 56))
        self.query_one("#cards", Grid).styles.grid_size_columns = cols

    def update_title(self) -> None:
        live = sum(1 for cl in self.sd.clients if cl.state == c.LIVE)
        alerts = sum(len(a) for a in self.sd.alerts)
        # every machine's frame asks for the title: the filter is matched against each card only when there is one
        hidden = sum(1 for i in range(len(self.sd.clients)) if not self._card_matches(i)) if self.filter_text else 0
        title = (
            f"[b]sparkdeck[/b]  {live}/{len(self.sd.clients)} live  "
            + (f"[$error]{alerts} alert(s)[/]" if alerts else "[dim]no alerts[/dim]")
            + (f"  [$warning]filter “{escape(self.filter_text)}”: {len(self.sd.clients) - hidden} shown, {hidden} hidden[/]" if self.filter_text else "")
        )
        if title != self._title:  # a Static's update lays the screen out again: only when the words change
            self._title = title
            self.query_one("#overview-title", Static).update(title)

    def update_view(self) -> None:
        self.update_title()
        for i, (cl, card) in enumerate(zip(self.sd.clients, self._cards, strict=True)):
            card.display = self._card_matches(i)
            card.show((cl, self.sd.alerts[i]))

    def machine_changed(self, index: int) -> None:
        if self.live_view:  # only that machine's card
            self.update_title()
            self._cards[index].show((self.sd.clients[index], self.sd.alerts[index]))

    def tick(self) -> None:
        for card in self._cards:
            card.tick()
