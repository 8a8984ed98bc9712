"""The connection line on every screen: state, reason, retry countdown, staleness."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from tui import client as c
from tui.format import clock_time, duration
from tui.widgets.framed import FramedWidget
from tui.widgets.styles import CachedComponentStyles

ICONS = {c.LIVE: "●", c.CONNECTING: "◌", c.RECONNECTING: "◌", c.AUTH_FAILED: "✖", c.INCOMPATIBLE: "✖", c.STOPPED: "■"}


def state_text(cl: c.AgentClient, now: float) -> tuple[str, str]:
    """(short label, detail) for a client's connection state."""
    if cl.state == c.LIVE:
        scope = "read-only token" if cl.scope == "read" else "control"
        agent = (cl.hello or {}).get("agent_version", "?")
        sim = "  simulated" if (cl.hello or {}).get("simulated") else ""
        return "live", f"agent {agent}  {scope}{sim}"
    if cl.state == c.CONNECTING:
        return "connecting", f"{cl.target.url}" + (f"  ({cl.reason})" if cl.reason else "")
    if cl.state == c.RECONNECTING:
        when = f"next try in {max(0.0, cl.next_try_at - now):.0f}s" if cl.next_try_at else "trying now"
        label = "reconnecting" if cl.hello is not None else "connecting"  # never reached yet: still connecting
        return label, f"{when} (attempt {max(cl.attempt, 1)})" + (f": {cl.reason}" if cl.reason else "")
    if cl.state == c.AUTH_FAILED:
        return "auth failed", cl.reason + "  (r: retry)"
    if cl.state == c.INCOMPATIBLE:
        return "incompatible", cl.reason
    return cl.state, cl.reason


def name_suffix(cl: c.AgentClient) -> str:
    """The agent's own hostname, beside the user's name for the machine (nothing when they agree)."""
    host = cl.agent_hostname
    return f" ({host})" if host and host != cl.name else ""


def stale_text(cl: c.AgentClient, now: float) -> str:
    if not cl.stale or cl.last_frame_at is None:
        return ""
    return f"STALE: last data {clock_time(cl.last_frame_at)} ({duration(now - cl.last_frame_at)} ago)"


class ConnBar(FramedWidget, CachedComponentStyles):
    DEFAULT_CSS = """
    ConnBar { height: 1; background: $panel; padding: 0 1; }
    ConnBar.-live { color: $text; }
    ConnBar.-live > .conn--icon { color: $success; }
    ConnBar.-waiting > .conn--icon { color: $warning; }
    ConnBar.-failed > .conn--icon { color: $error; }
    ConnBar > .conn--stale { color: $warning; text-style: bold; }
    """
    COMPONENT_CLASSES = {"conn--icon", "conn--stale"}

    def __init__(self, clock: Callable[[], float], **kw):
        super().__init__(**kw)
        self.clock = clock
        self.client: c.AgentClient | None = None
        self.extra = ""
        self._shown: tuple | None = None  # what the line said when last drawn, to skip repaints that change nothing

    def show(self, client: c.AgentClient, extra: str = "") -> None:
        self.client, self.extra = client, extra
        self.set_class(client.state == c.LIVE, "-live")
        self.set_class(client.state in (c.CONNECTING, c.RECONNECTING), "-waiting")
        self.set_class(client.state in (c.AUTH_FAILED, c.INCOMPATIBLE, c.STOPPED), "-failed")
        self.tick()

    def tick(self) -> None:
        """Repaint when the words changed (a countdown, the age of stale data), not on every frame and second:
        a class change (live, waiting, failed) repaints by itself."""
        cl = self.client
        now = self.clock()
        said = None if cl is None else (cl.state, cl.name, name_suffix(cl), state_text(cl, now), stale_text(cl, now), self.extra, self.size.width)
        if said != self._shown:
            self._shown = said
            self.refresh()

    def on_resize(self) -> None:
        self.tick()

    def render(self) -> Text:
        cl = self.client
        if cl is None:
            return Text("")
        now = self.clock()
        label, detail = state_text(cl, now)
        text = Text.assemble(
            (ICONS.get(cl.state, "?") + " ", self.get_component_rich_style("conn--icon")),
            (cl.name, "bold"),
            (name_suffix(cl), "dim"),
            "  ",
            (label, "bold"),
        )
        stale = stale_text(cl, now)
        if stale:  # before the detail: at 80 columns it must not be cut off
            text.append("  " + stale, self.get_component_rich_style("conn--stale"))
        text.append("  " + detail, "dim")
        if self.extra:
            text.append("  " + self.extra)
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text
