"""The logs screen as the user drives it: follow state in the title, `e` resumes, `t` timestamps, `/` search with n/N, `w` wrap."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from textual.widgets import Input, RichLog, Static

from tests.helpers.tui import until
from tests.helpers.tui_fakes import FakeLogsClient, app_for, clock, hello
from tui import client as c
from tui.app import SparkdeckApp
from tui.client import LogLine, Target
from tui.screens.logs import LogsScreen


class StreamingClient(FakeLogsClient):
    """200 lines of tail, then whatever the test puts on ``queue`` (None ends the stream)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue: asyncio.Queue[LogLine | None] = asyncio.Queue()

    async def container_log_entries(self, ref: str, tail: int = 200) -> list[LogLine]:
        return [LogLine(f"2026-11-29T14:00:{i % 60:02d}.{i:03d}000000Z", f"line {i}" + (" ERROR boom" if i in (20, 120, 180) else "")) for i in range(200)]

    async def follow_log_entries(self, ref, on_entry, tail: int = 0) -> None:
        while (entry := await self.queue.get()) is not None:
            on_entry(entry)


def streaming_app() -> tuple[SparkdeckApp, StreamingClient]:
    cl = StreamingClient(Target("spark-01", "http://spark-01.local:8611", "t"), clock=clock)
    cl.handle_frame(hello("spark-01", "control"))
    return app_for([cl], "containers"), cl


def title(app) -> str:
    return str(app.screen.query_one("#logs-title", Static).render())


def text_of(log: RichLog) -> str:
    return "\n".join(line.text for line in log.lines)


def visible(log: RichLog, row: int) -> bool:
    return log.scroll_y <= row < log.scroll_y + log.scrollable_content_region.height


async def open_logs(app, pilot, **kw) -> tuple[LogsScreen, RichLog]:
    app.push_screen(LogsScreen(0, "a1" * 32, "vllm-qwen", **kw))
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, LogsScreen)
    log = screen.query_one(RichLog)
    await until(pilot, lambda: len(screen.lines) >= 200, what="tail lines")
    await pilot.pause()
    return screen, log


async def test_title_says_paused_with_new_lines_and_e_resumes_following():
    app, cl = streaming_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen, log = await open_logs(app, pilot)
        assert "following" in title(app)
        assert log.scroll_y == log.max_scroll_y  # at the end
        await pilot.press("pageup")  # scrolling up pauses
        await pilot.pause()
        assert "paused — 0 new lines" in title(app)
        for i in range(3):
            cl.queue.put_nowait(LogLine(None, f"fresh {i}"))
        await until(pilot, lambda: "paused — 3 new lines" in title(app), what="the new-line count")
        assert log.scroll_y < log.max_scroll_y  # paused: the view stayed where the user put it
        await pilot.press("e")
        await pilot.pause()
        assert "following" in title(app) and "paused" not in title(app)
        assert log.scroll_y == log.max_scroll_y
        cl.queue.put_nowait(LogLine(None, "after resume"))
        await until(pilot, lambda: "after resume" in text_of(log), what="the next line")
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y  # following again: the view moved with the new line
        await pilot.press("f")
        assert "paused" in title(app)
        await pilot.press("f")
        assert "following" in title(app)
        cl.queue.put_nowait(None)


async def test_t_shows_the_agents_timestamps():
    app, cl = streaming_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen, log = await open_logs(app, pilot)
        assert "2026-11-29" not in text_of(log)
        await pilot.press("t")
        await pilot.pause()
        assert "2026-11-29 14:00:19.199 line 199" in text_of(log)
        assert "timestamps (UTC)" in title(app)
        await pilot.press("t")
        assert "2026-11-29" not in text_of(log)
        cl.queue.put_nowait(None)


async def test_search_highlights_moves_with_n_and_N_wraps_and_says_no_match():
    app, cl = streaming_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen, log = await open_logs(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"error", "enter")
        await pilot.pause()
        # following: the newest match first; the view leaves the end, so following pauses
        assert "“error” match 3/3" in title(app) and "paused" in title(app)
        assert visible(log, screen.rows[180])
        highlighted = [seg for seg in log.lines[screen.rows[180]] if "ERROR" in seg.text]
        assert highlighted and highlighted[0].style is not None and highlighted[0].style.bgcolor is not None
        await pilot.press("n")
        assert "match 1/3 (wrapped to the top)" in title(app)
        assert int(log.scroll_y) == screen.rows[20] - 2 and visible(log, screen.rows[20])
        await pilot.press("n")
        assert "match 2/3" in title(app)
        await pilot.press("N", "N")
        assert "match 3/3 (wrapped to the bottom)" in title(app)
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"&error", "enter")  # `&`: only the matching lines
        await pilot.pause()
        assert [line.text for line in log.lines] == ["line 20 ERROR boom", "line 120 ERROR boom", "line 180 ERROR boom"]
        assert "only matching lines: 3 of 200" in title(app)
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"error", "enter")
        await pilot.pause()
        assert len(log.lines) == 200
        await pilot.press("slash")
        await pilot.press("ctrl+a", "ctrl+k", *"nothing-like-this", "enter")
        await pilot.pause()
        assert "no match for “nothing-like-this”" in title(app)
        await pilot.press("n")
        assert "no match" in title(app)
        cl.queue.put_nowait(None)


async def test_w_wraps_long_lines_and_the_buffer_stays_bounded():
    app, cl = streaming_app()
    async with app.run_test(size=(60, 20)) as pilot:
        screen, log = await open_logs(app, pilot, max_lines=300)
        cl.queue.put_nowait(LogLine(None, "x" * 150))
        await until(pilot, lambda: len(screen.lines) == 201, what="the long line")
        rows = len(log.lines)
        await pilot.press("w")
        await pilot.pause()
        assert "wrap" in title(app) and len(log.lines) >= rows + 2  # the 150-character line now takes 3+ rows
        await pilot.press("w")
        for i in range(1000):
            cl.queue.put_nowait(LogLine(None, f"flood {i}"))
        await until(pilot, lambda: "flood 999" in text_of(log), what="the flood")
        assert len(screen.lines) <= 300 + screen.slack and len(log.lines) <= 300 + screen.slack
        assert screen.lines[-1].text == "flood 999"
        cl.queue.put_nowait(None)


@pytest.mark.docker
async def test_timestamps_and_search_against_a_real_agent(docker_engine, start_agent):
    name = f"sdt-logs-{uuid.uuid4().hex[:8]}"
    docker_engine.run(docker_engine.image, "sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done", name=name)
    agent = start_agent("--simulate", "gb10", "--interval", "0.5")
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="containers")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.clients[0].state == c.LIVE, what="live")
        app.push_screen(LogsScreen(0, name, name))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        log = screen.query_one(RichLog)
        await until(pilot, lambda: len(screen.lines) >= 5, what="lines from the engine")
        assert all(entry.ts and entry.ts[:4].isdigit() for entry in screen.lines)  # the agent sends the engine's time
        await pilot.press("t")
        await until(pilot, lambda: any(line.text[:4].isdigit() and "tick-" in line.text for line in log.lines), what="timestamps shown")
        needle = screen.lines[3].text.strip()  # a line that is there (tick-3 unless the stream began later)
        await pilot.press("slash")
        await until(pilot, lambda: screen.query_one("#search", Input).has_focus, what="the search box")
        await pilot.press(*needle, "enter")
        try:
            await until(pilot, lambda: f"“{needle}” match" in title(app), what="a match in the title")
        except AssertionError as exc:  # say what the title and the lines were, should it ever time out again
            raise AssertionError(f"{exc}; title {title(app)!r}; lines {[e.text for e in screen.lines[:8]]}") from None
        assert "paused" in title(app)
        await pilot.press("e")
        await until(pilot, lambda: "following" in title(app), what="following")


async def test_dropping_the_oldest_lines_trims_rows_without_a_redraw_and_keeps_search_and_view():
    app, cl = streaming_app()
    async with app.run_test(size=(60, 20)) as pilot:
        screen, log = await open_logs(app, pilot, max_lines=300)
        await pilot.press("slash", *"ERROR", "enter")  # three matches in the tail (a new search redraws)
        await pilot.pause()
        await pilot.press("pageup")  # paused, a page up
        await pilot.pause()
        assert not screen.follow
        top_text = log.lines[int(log.scroll_y)].text
        redraws = []
        redraw = screen.redraw
        screen.redraw = lambda: (redraws.append(1), redraw())[1]
        for i in range(140):  # 340 lines > 300 + slack: the oldest go, the match at line 20 with them
            cl.queue.put_nowait(LogLine(None, f"flood {i}" + (" ERROR late" if i == 70 else "")))
        await until(pilot, lambda: screen.lines[-1].text == "flood 139", what="the flood")
        await pilot.pause()
        assert not redraws  # trimmed, not drawn again
        assert len(screen.lines) <= 300 + screen.slack and screen.lines[0].text != "line 0"
        assert len(log.lines) == len(screen.lines)  # no wrap: one row a line
        assert [screen.lines[i].text for i in screen.matches] == ["line 120 ERROR boom", "line 180 ERROR boom", "flood 70 ERROR late"]
        assert all(log.lines[screen.rows[i]].text == screen.lines[i].text for i in range(len(screen.lines)))
        assert log.lines[int(log.scroll_y)].text == top_text  # paused: the same line stays at the top
        await pilot.press("n")  # search still jumps to the right rows
        await pilot.pause()
        k = screen.match_at
        assert visible(log, screen.rows[screen.matches[k]])
        shown = [line.text for line in log.lines]
        screen.redraw = redraw
        redraw()  # a full redraw draws exactly what the trimmed log holds
        await pilot.pause()
        assert [line.text for line in log.lines] == shown
        cl.queue.put_nowait(None)
