"""What every machine-facing screen shares: the connection bar, a body, the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.client import AgentClient
from tui.widgets.conn_bar import ConnBar
from tui.widgets.fit_footer import FitFooter
from tui.widgets.kept import KeepsRows

if TYPE_CHECKING:
    from tui.app import SparkdeckApp


class BaseView(Screen, KeepsRows):
    """A screen about machine ``index`` (None: all machines)."""

    view = "base"
    index: int | None = None
    ready = False  # composed and mounted: update_view may query children
    focus_move = 1  # the way focus last moved (tab 1, shift+tab -1): a widget with stops inside enters at its far end

    def focus_next(self, selector="*"):
        self.focus_move = 1
        return super().focus_next(selector)

    def focus_previous(self, selector="*"):
        self.focus_move = -1
        return super().focus_previous(selector)

    @property
    def sd(self) -> SparkdeckApp:
        return self.app  # type: ignore[return-value]

    @property
    def client(self) -> AgentClient:
        return self.sd.clients[self.index or 0]

    def conn_bar(self) -> ConnBar:
        return ConnBar(self.sd.clock, id="conn")

    def footer(self) -> FitFooter:
        return FitFooter()

    def on_mount(self) -> None:
        self.ready = True
        if self.app.is_running:  # a screen built off-stage can be mounted while the app shuts down (children gone)
            self.update_view()

    def on_unmount(self) -> None:
        self.ready = False

    @property
    def live_view(self) -> bool:
        """Composed, mounted, still on the screen stack (not popped), and the app not shutting down.

        Shutdown removes a screen's children before the screen, so a frame handled in between
        would find no connection bar; the app stops running before any of that starts.
        """
        return self.ready and self.app.is_running and self.is_attached and self in self.app.screen_stack

    def on_screen_resume(self) -> None:
        if self.live_view:
            self.update_view()

    def machine_changed(self, index: int) -> None:
        if self.live_view and (self.index is None or index == self.index):
            self.update_view()

    def tick(self) -> None:
        """Once a second: refresh ages and countdowns."""
        if self.live_view:
            self.query_one("#conn", ConnBar).tick()

    def set_text(self, target: str | Static, markup: str) -> None:
        """Update a Static (or the one ``target`` selects) only when its text changes; hide it when empty. The screen is
        laid out again only when the text's height may change: a once-a-second figure in a one-line notice is a
        repaint, not a layout."""
        widget = target if isinstance(target, Static) else self.query_one(target, Static)
        old = getattr(widget, "_last_markup", None)
        if old == markup:
            return
        width = widget.content_size.width
        plain = Content.from_markup(markup).plain.split("\n")  # Textual markup ($warning), as Static reads it
        fits = bool(markup) and width > 0 and all(cell_len(line) <= width for line in plain)  # one row a line
        same_height = fits and getattr(widget, "_last_fit", False) and old is not None and old.count("\n") == markup.count("\n")
        widget._last_markup, widget._last_fit = markup, fits  # type: ignore[attr-defined]
        widget.update(markup, layout=not same_height)
        widget.display = bool(markup)

    def cursor_key(self) -> str | None:
        """The row key under the cursor of this screen's table (None: the table is empty)."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def update_view(self) -> None:
        self.query_one("#conn", ConnBar).show(self.client)
        self.set_class(self.client.stale, "-stale")


async def forward_port(screen, client, port: int, what: str) -> None:
    """Forward (over SSH when the agent is reached that way) and copy the local URL."""
    try:
        url = await client.forward(port)
    except Exception as exc:  # SshError and OSError: say it, never crash the UI
        screen.notify(str(exc), title=f"cannot forward {what}", severity="error")
        return
    screen.app.copy_to_clipboard(url)
    screen.notify(f"{what}: {url} (copied)", title="port forwarded" if client.target.via else "endpoint")
