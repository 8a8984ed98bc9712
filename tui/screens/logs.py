"""A container's logs: the last lines, then following live until the container stops.

The screen keeps the lines it shows (bounded: ``max_lines`` plus a slack, then the oldest are
dropped together, their rows trimmed from the log without drawing the rest again) so that `t` (timestamps), `w` (wrap) and `/` (search) can
redraw them. The title always says the real follow state: scrolling up pauses following and
counts the lines that arrive meanwhile; `e` jumps to the end and follows again.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.widgets import Input, RichLog, Static

from tui.client import ApiFailure, LogLine
from tui.screens.base import BaseView

MATCH_STYLE = "black on yellow"


def short_ts(ts: str | None) -> str:
    """``2026-01-01T12:00:00.123456789Z`` -> ``2026-01-01 12:00:00.123`` (the engine's UTC time)."""
    if not ts:
        return " " * 23
    return (ts[:10] + " " + ts[11:23]).ljust(23)


class LogsScreen(BaseView):
    view = "logs"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("f", "toggle_follow", "Follow on/off"),
        Binding("e", "end", "End+follow"),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match(1)", "Next match"),
        Binding("N", "next_match(-1)", "Prev match", show=False),
        Binding("t", "toggle_timestamps", "Timestamps"),
        Binding("w", "toggle_wrap", "Wrap"),
    ]

    def __init__(self, index: int, ref: str, name: str, tail: int = 200, max_lines: int = 5000):
        super().__init__()
        self.index, self.ref, self.name_, self.tail = index, ref, name, tail
        self.max_lines = max_lines
        self.slack = max(1, max_lines // 10)  # drop the oldest once per `slack` lines, not on every line
        self.lines: list[LogLine] = []
        self.rows: list[int] = []  # first row in the RichLog of each line in self.lines
        self.follow = True
        self.unseen = 0  # lines that arrived while paused
        self.timestamps = False
        self.wrap = False
        self.pattern = ""
        self.only = False  # `/&text`: show only the lines holding text (less's `&`)
        self.matches: list[int] = []  # indices into self.lines
        self.match_at = -1
        self.search_note = ""
        self.stream_note = ""
        self._redrawing = False

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static(self._title(), id="logs-title")
        yield RichLog(id="log", wrap=False, highlight=False, markup=False, min_width=1)  # wrap at the screen width, not at 78
        yield Input(placeholder="search (enter: find, n/N: next/previous; &text: only matching lines; esc: close)", id="search")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        super().on_mount()
        log = self.query_one(RichLog)
        self.watch(log, "scroll_y", self._scrolled, init=False)
        log.focus()
        self.run_worker(self._load(), exclusive=True, exit_on_error=False, group="logs")

    async def _load(self) -> None:
        try:
            for entry in await self.client.container_log_entries(self.ref, self.tail):
                self.add_line(entry)
        except ApiFailure as exc:
            self.add_line(LogLine(None, f"-- cannot read logs: {exc.detail}"))
            return
        try:
            await self.client.follow_log_entries(self.ref, self.add_line, tail=0)
            self.stream_note = "stream ended"
        except Exception as exc:  # noqa: BLE001 - any failure is shown, never crashes the app
            self.stream_note = f"[$warning]live follow unavailable: {escape(str(exc)[:120])}[/]"
        if self.live_view:
            self._show_title()

    # -- lines ------------------------------------------------------------------------
    def _line_text(self, i: int) -> Text:
        entry = self.lines[i]
        stderr = entry.text.startswith("stderr| ")
        text = Text(entry.text, style=(self.app.current_theme.warning or "yellow") if stderr else "")  # a Rich style: no $variables here
        if self.pattern:
            text.highlight_words([self.pattern], MATCH_STYLE, case_sensitive=False)
        if self.timestamps:
            text = Text.assemble((short_ts(entry.ts) + " ", "dim"), text)
        return text

    def add_line(self, entry: LogLine) -> None:
        if not self.live_view:
            return
        log = self.query_one(RichLog)
        self.lines.append(entry)
        self._write(log, len(self.lines) - 1, scroll_end=self.follow)
        if len(self.lines) > self.max_lines + self.slack:  # the bound: keep the newest max_lines
            self._drop_oldest(log, len(self.lines) - self.max_lines)
        if not self.follow:
            self.unseen += 1
            self._show_title()

    def _write(self, log: RichLog, i: int, scroll_end: bool) -> None:
        """Line ``i`` into the log (not at all when filtering and it does not match); note its row and match."""
        hit = bool(self.pattern) and self.pattern.lower() in self.lines[i].text.lower()
        self.rows.append(len(log.lines))
        if hit:
            self.matches.append(i)
        if hit or not (self.only and self.pattern):
            log.write(self._line_text(i), scroll_end=scroll_end)

    def _drop_oldest(self, log: RichLog, k: int) -> None:
        """Forget the oldest ``k`` lines and their rows, as RichLog's own ``max_lines`` trims (its row cache is
        keyed from ``_start_line``): redrawing the 5,000 lines kept instead stalled a chatty log ~0.5 s every 500 lines."""
        cut = self.rows[k] if k < len(self.rows) else len(log.lines)
        del self.lines[:k]
        self.rows = [r - cut for r in self.rows[k:]]
        kept = [m - k for m in self.matches if m >= k]
        self.match_at = max(-1, self.match_at - (len(self.matches) - len(kept)))
        self.matches = kept
        if not cut:
            return
        self._redrawing = True  # the scroll moves below are not the user's
        try:
            log._start_line += cut
            log.lines = log.lines[cut:]
            log.virtual_size = Size(log._widest_line_width, len(log.lines))
            if self.follow:
                log.scroll_end(animate=False, immediate=True)
            else:  # paused: the same lines stay in view
                log.scroll_to(y=max(0, log.scroll_y - cut), animate=False, immediate=True)
            log.refresh()
        finally:
            self._redrawing = False

    def redraw(self) -> None:
        """Draw every kept line again (after a toggle or a new search)."""
        log = self.query_one(RichLog)
        self._redrawing = True
        try:
            log.clear()
            log.wrap = self.wrap
            self.rows = []
            self.matches = []
            for i in range(len(self.lines)):
                self._write(log, i, scroll_end=False)
        finally:
            self._redrawing = False
        if self.follow:
            log.scroll_end(animate=False, immediate=True)
        self._show_title()

    # -- title --------------------------------------------------------------------------
    def _title(self) -> str:
        state = "[b]following[/b]" if self.follow else f"[b $warning]paused[/] — {self.unseen} new line{'' if self.unseen == 1 else 's'} (e: follow)"
        # the search first: at 80 columns the title is cut at the right
        extras = [x for x in (self.search_note, self.stream_note, "timestamps (UTC)" if self.timestamps else "", "wrap" if self.wrap else "") if x]
        return f"logs of [b]{escape(self.name_)}[/b]  {state}" + "".join(f"  · {x}" for x in extras)

    def _show_title(self) -> None:
        if self.live_view:
            self.set_text("#logs-title", self._title())

    def _pause(self) -> None:
        if self.follow:
            self.follow = False
            self.unseen = 0
            self.query_one(RichLog).auto_scroll = False
            self._show_title()

    def _scrolled(self, old: float, new: float) -> None:
        """Scrolling up (wheel, keys) pauses following; the title says so."""
        log = self.query_one(RichLog)
        if not self._redrawing and new < old and new < log.max_scroll_y:
            self._pause()

    # -- actions --------------------------------------------------------------------------
    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.display:
            box.display = False
            self.query_one(RichLog).focus()
            return
        self.app.pop_screen()

    def action_toggle_follow(self) -> None:
        if self.follow:
            self._pause()
        else:
            self.action_end()

    def action_end(self) -> None:
        log = self.query_one(RichLog)
        self.follow, self.unseen = True, 0
        log.auto_scroll = True
        log.scroll_end(animate=False, immediate=True)
        self._show_title()

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps
        self.redraw()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self.redraw()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.value = ("&" if self.only else "") + self.pattern
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        event.input.display = False
        self.query_one(RichLog).focus()
        value = event.value.strip()
        self.only = value.startswith("&")
        self.pattern = value.lstrip("&").strip()
        self.match_at = -1
        self.redraw()
        if not self.pattern:
            self.search_note = ""
        elif not self.matches:
            self.search_note = f"[$warning]no match for “{escape(self.pattern)}”[/]"
        else:
            top = int(self.query_one(RichLog).scroll_y)
            after = [k for k, i in enumerate(self.matches) if self.rows[i] >= top]
            self._jump(after[0] if after and not self.follow else len(self.matches) - 1)  # following: the newest match
            return
        self._show_title()

    def action_next_match(self, step: int) -> None:
        if not self.pattern:
            self.notify("no search yet: press / to search", severity="warning")
            return
        if not self.matches:
            self.search_note = f"[$warning]no match for “{escape(self.pattern)}”[/]"
            self._show_title()
            return
        if self.match_at < 0:  # none chosen yet, or the one chosen was dropped with the oldest lines
            self._jump(0 if step > 0 else len(self.matches) - 1)
            return
        k = self.match_at + step
        wrapped = "" if 0 <= k < len(self.matches) else (" (wrapped to the top)" if step > 0 else " (wrapped to the bottom)")
        self._jump(k % len(self.matches), wrapped)

    def _jump(self, k: int, wrapped: str = "") -> None:
        self.match_at = k
        self._pause()
        row = self.rows[self.matches[k]]
        self.query_one(RichLog).scroll_to(y=max(0, row - 2), animate=False, immediate=True)
        shown = f" (only matching lines: {len(self.matches)} of {len(self.lines)})" if self.only else ""
        self.search_note = f"“{escape(self.pattern)}” match {k + 1}/{len(self.matches)}{wrapped}{shown}"
        self._show_title()
