"""The TUI's model-server figures (Containers, Models), thermal zones and the throttle timeline
(machine detail): snapshots at 160x48 and 80x24 from fixed frames, and the timeline's pure logic."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.content import Content

from tests.helpers.tui import until
from tests.helpers.tui_fakes import CATALOG, CONTAINERS, NOW, SIZES, FakeLogsClient, app_for, gpu_gb10, hello, snapshot_frame
from tui import serving
from tui.client import Target
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.widgets.cpu_panel import CpuPanel
from tui.widgets.throttle_panel import ThrottlePanel, timeline

SERVING = {
    "kind": "vllm",
    "source": "label",
    "requests_running": 5,
    "requests_waiting": 3,
    "kv_cache_usage_percent": 87.0,
    "prompt_tokens_per_s": 202.2,
    "generation_tokens_per_s": 404.4,
    "ttft_p50_s": 0.075,
    "models": None,
    "error": None,
}
ZONES = [
    {"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 96.5, "trips": [{"type": "passive", "temp_c": 95.0}, {"type": "critical", "temp_c": 105.0}]},
    {"zone": "thermal_zone1", "type": "gpu-thermal", "temp_c": 61.0, "trips": [{"type": "critical", "temp_c": 105.0}]},
]
EVENTS = [
    {"id": 1, "kind": "throttle", "gpu": 0, "gpu_uuid": "GPU-5a1e7c2b", "reason": "sw_power_cap", "start": NOW - 500, "end": NOW - 380},
    {"id": 2, "kind": "throttle", "gpu": 0, "gpu_uuid": "GPU-5a1e7c2b", "reason": "hw_thermal_slowdown", "start": NOW - 200, "end": NOW - 150},
    {"id": 3, "kind": "throttle", "gpu": 0, "gpu_uuid": "GPU-5a1e7c2b", "reason": "sw_power_cap", "start": NOW - 60, "end": None},
]


class EventsClient(FakeLogsClient):
    async def throttle_events(self, seconds: float):
        return EVENTS, NOW - 600, NOW


def serving_client() -> EventsClient:
    cl = EventsClient(Target("spark-01", "http://spark-01.local:8611", "t"), clock=lambda: NOW)
    cl.handle_frame(hello("spark-01"))
    conts = [dict(c) for c in CONTAINERS]
    conts[0]["serving"] = SERVING
    for seq in range(1, 121):
        frame = snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], conts)
        frame["host"]["thermal_zones"] = ZONES
        cl.handle_frame(frame)
    return cl


def test_timeline_cells():
    rows = timeline(EVENTS, NOW - 600, NOW, 60)
    assert [r[0] for r in rows] == ["gpu0 hw_thermal_slowdown", "gpu0 sw_power_cap"]
    power = rows[1]
    assert power[1][10:22] == "█" * 12 and power[1][-6:] == "█" * 6 and power[1][30] == "·"  # an open event runs to now
    assert power[2] == 180.0 and rows[0][2] == 50.0
    assert timeline([{"gpu": 0, "reason": "x", "start": NOW - 900, "end": NOW - 700}], NOW - 600, NOW, 10) == []  # outside the window


def test_serving_text():
    assert serving.short(SERVING) == "404 tok/s 5r/3w KV 87%"
    assert serving.full("vllm-qwen", SERVING).endswith("TTFT p50 75 ms")
    assert serving.short({**SERVING, "error": "down"}) == "metrics ✗"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_containers_with_serving(snap_compare, size):
    # the server's row is last by name: selecting it shows its figures in full above the table
    assert snap_compare(app_for([serving_client()], "containers"), terminal_size=size, press=["down", "down", "down"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_with_serving(snap_compare, size):
    app = app_for([serving_client()], "overview")

    async def open_models(pilot):
        app.push_screen(ModelsScreen(0, catalog=CATALOG))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_models)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_machine_detail_thermal_and_throttle(snap_compare, size):
    app = app_for([serving_client()], "detail")

    async def settle(pilot):
        for _ in range(50):  # the events worker answers, the panel appears (generous: a loaded machine is slow)
            await pilot.pause(0.05)
            if app.screen.query_one("#throttle").display:
                break
        await pilot.pause()
        if size[1] < 40:
            await pilot.press("end")  # the timeline sits below the panels

    assert snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_throttle_panel_is_as_tall_as_its_lines(size):
    """Shown before its first layout the panel is built at a guessed width (its rows wrap there), then at its
    real width, then again when a scroll bar takes two columns: it ends as tall as the lines it draws — it
    kept the height measured from the text of the width before, two blank rows inside its border at 80x24."""
    app = app_for([serving_client()], "detail")
    # the detail screen keeps its scroll bar's columns now; a panel must not rely on that: here the bar takes its
    # two columns when the timeline makes the screen scroll, as it did before
    app.CSS = "#detail { scrollbar-gutter: auto; }"  # type: ignore[misc]
    async with app.run_test(size=size) as pilot:
        panel = app.screen.query_one("#throttle", ThrottlePanel)
        await until(pilot, lambda: panel.display and panel.data is not None, 5, what="the timeline")
        for _ in range(5):  # the layouts that follow: shown, real width, the scroll bar
            await pilot.pause()
        assert panel._built_width == panel.content_size.width  # drawn from the lines wrapped at its width
        drawn = [line.plain for line in panel._wrapped]
        assert len(drawn) == 3, drawn  # two event rows and the time axis
        assert panel.content_size.height == len(drawn), (panel.content_size, drawn)


def test_timeline_keeps_rows_asked_for():
    rows = timeline([], NOW - 600, NOW, 10, keep=[(0, "sw_power_cap")])
    assert rows == [("gpu0 sw_power_cap", "·" * 10, 0.0)]


def subtitle_of(panel: ThrottlePanel) -> str:
    """The border subtitle the panel shows, or will show once seen (below the fold it is held: tui/widgets/offview.py)."""
    held = (panel.border_held or {}).get("border_subtitle")
    if isinstance(held, Text):
        return held.plain.strip()
    return Content.from_markup(str(held) if held is not None else panel.border_subtitle or "").plain.strip()


async def test_throttle_timeline_keeps_its_height_as_events_come_and_go():
    """An event that ends, or leaves the window, changes the panel's cells, not its height (a height change lays
    the whole screen out); a new range starts its rows again."""
    cl = serving_client()
    answers = [
        [EVENTS[2]],  # one ongoing power cap
        [EVENTS[2] | {"end": NOW - 30}],  # it ended
        [],  # it left the window
        [EVENTS[2]],  # another one
    ]
    shown: list[tuple[bool, int, str, str]] = []

    async def throttle_events(seconds: float):
        return answers[min(len(shown), len(answers) - 1)], NOW - 600, NOW  # then the last one, again

    cl.throttle_events = throttle_events
    app = app_for([cl], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, MachineScreen)
        panel = screen.query_one("#throttle", ThrottlePanel)
        layouts = []
        real_layout = screen._refresh_layout
        screen._refresh_layout = lambda *a, **k: (layouts.append(1), real_layout(*a, **k))[1]
        updates = []
        real_update = screen.update_view
        screen.update_view = lambda: (updates.append(1), real_update())[1]
        for _ in answers:  # throttle_events answers the next one each time
            await screen._load_events(600)
            if shown:  # shown and live: drawn with the next frame, not by a whole update of its own
                assert updates == []
                screen.machine_changed(0)  # the next frame
            updates.clear()
            await pilot.pause()
            if not shown:
                layouts.clear()  # the first events show the panel: that one is a layout
            shown.append((panel.display, panel.outer_size.height, subtitle_of(panel), str(panel.render()).splitlines()[0]))
        assert [s[0] for s in shown] == [True] * 4
        assert len({s[1] for s in shown}) == 1, shown  # one height throughout
        assert [s[2] for s in shown] == ["1 ongoing", "", "", "1 ongoing"]
        assert shown[2][3].startswith("gpu0 sw_power_cap") and "█" not in shown[2][3]  # the row stays, empty
        assert layouts == []  # nothing below it was moved
        assert panel.seen == {(0, "sw_power_cap")}
        answers.append([EVENTS[1]])  # the new range's own events
        await pilot.press("h")  # another range: rows and panel start again (its events may already be in)
        await until(pilot, lambda: panel.display and panel.data is not None and panel.data[0] == [EVENTS[1]], 5, what="the new range's timeline")
        await pilot.pause()
        assert panel.seen == {(0, "hw_thermal_slowdown")}
        assert [line.split()[1] for line in str(panel.render()).splitlines()[:-1]] == ["hw_thermal_slowdown"]

        # the agent stops answering: the timeline goes rather than standing still
        async def failing(seconds: float):
            raise OSError("connection refused")

        cl.throttle_events = failing
        await screen._load_events(600)
        screen.machine_changed(0)
        await pilot.pause()
        assert not panel.display


def test_throttle_rows_with_time_in_the_window_come_first_when_more_than_fit():
    from tui.widgets.throttle_panel import MAX_ROWS, active_first

    kept = {(g, "sw_power_cap") for g in range(MAX_ROWS + 1)}
    rows = timeline([{"gpu": 9, "reason": "hw_slowdown", "start": NOW - 60, "end": None}], NOW - 600, NOW, 10, keep=kept)
    assert rows[-1][0] == "gpu9 hw_slowdown"  # by GPU: past what fits
    shown = active_first(rows)
    assert shown[0][0] == "gpu9 hw_slowdown" and [r[0] for r in shown[1:]] == [r[0] for r in rows[:-1]]
    assert active_first(rows[:MAX_ROWS]) == rows[:MAX_ROWS]  # all fit: the order stays


async def test_the_timeline_appearing_past_the_screens_height_moves_no_panel_sideways():
    """At 160x53 the detail screen fits until the timeline appears; then the scroll bar shows. Its columns are kept
    from the start (scrollbar-gutter: stable), so no panel changes width: two layouts, not four (a panel's width
    changing re-wraps it and lays the screen out again, ~20 ms each here), and nothing jumps sideways."""
    cl = serving_client()
    answer: list[list] = [[]]

    async def throttle_events(seconds: float):
        return answer[0], NOW - 600, NOW

    cl.throttle_events = throttle_events
    app = app_for([cl], "detail")
    async with app.run_test(size=(160, 53)) as pilot:
        for _ in range(5):
            await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MachineScreen)
        scroll = screen.query_one("#detail")
        assert not scroll.show_vertical_scrollbar  # it fits
        widths = [panel.size.width for panel in screen.query(CpuPanel)]
        layouts: list[int] = []
        real_layout = screen._refresh_layout
        screen._refresh_layout = lambda *a, **k: (layouts.append(1), real_layout(*a, **k))[1]
        answer[0] = EVENTS
        await screen._load_events(600)
        screen.machine_changed(0)
        for _ in range(6):
            await pilot.pause()
        assert screen.query_one("#throttle", ThrottlePanel).display and scroll.show_vertical_scrollbar
        assert [panel.size.width for panel in screen.query(CpuPanel)] == widths
        assert len(layouts) <= 2, layouts


async def test_throttle_events_are_fetched_when_the_snapshots_change_not_every_few_seconds(monkeypatch):
    """The detail screen asks for the events when it opens, when a snapshot's throttle reasons change, soon again
    after an answer that does not show what the snapshots did (the agent's store writes on its own thread) or that
    failed, and otherwise at most every REFRESH_EVENTS_S; between answers the timeline slides with the clock."""
    from tui.screens import machine

    monkeypatch.setattr(machine, "RECHECK_EVENTS_S", 0.3)
    now = [NOW]
    cl = serving_client()
    cl.clock = lambda: now[0]
    asked: list[set] = []
    answers: list = []  # what the agent's store holds: the next answer, else no event

    async def throttle_events(seconds: float):
        asked.append(set(cl.throttle_active.get(0, ())))
        answer = answers.pop(0) if answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer, now[0] - 600, now[0]

    cl.throttle_events = throttle_events
    seq = [cl.last_seq or 0]

    def sample(reasons: list[str]) -> None:
        seq[0] += 1
        f = snapshot_frame(seq[0], "spark-01", [gpu_gb10(seq[0]) | {"throttle_reasons": reasons}], CONTAINERS)
        f["ts"] = now[0]
        cl.handle_frame(f)

    app = app_for([cl], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, MachineScreen)
        panel = screen.query_one("#throttle", ThrottlePanel)

        async def frames(n: int, reasons: list[str]) -> None:
            for _ in range(n):
                now[0] += 1.0
                sample(reasons)
                screen.machine_changed(0)
                await pilot.pause()

        await until(pilot, lambda: len(asked) == 1, 5, what="the first fetch")
        await frames(8, ["gpu_idle"])  # idle is not throttling: the reasons known first are the only change
        assert len(asked) <= 2, asked
        base = len(asked)
        await frames(8, [])
        assert len(asked) == base  # nothing changed: no fetch (it was one every 5 s)

        open_event = {"id": 7, "kind": "throttle", "gpu": 0, "gpu_uuid": "GPU-5a1e7c2b", "reason": "sw_power_cap", "start": now[0] + 1, "end": None}
        answers.append([open_event])
        await frames(1, ["sw_power_cap"])
        await until(pilot, lambda: panel.display and panel.data is not None and panel.data[0] == [open_event], 5, what="the event shown")
        assert len(asked) == base + 1 and asked[-1] == {"sw_power_cap"}
        start, end = panel.data[1], panel.data[2]
        await frames(5, ["sw_power_cap"])  # the answer agreed: no fetch, the window moves with the clock
        assert len(asked) == base + 1
        assert (panel.data[1], panel.data[2]) == (start + 5, end + 5)

        answers.append([open_event])  # the event ended, the store has not written it yet: asked again soon
        answers.append([open_event | {"end": now[0] + 1}])
        await frames(1, [])
        await until(pilot, lambda: len(asked) == base + 2, 5, what="the fetch on the change")
        await pilot.pause(0.4)
        await frames(1, [])
        await until(pilot, lambda: len(asked) == base + 3, 5, what="the recheck")
        await pilot.pause()
        await frames(1, [])  # drawn with the next frame
        assert panel.data is not None and panel.data[0][0]["end"] is not None
        await pilot.pause(0.4)
        await frames(3, [])
        assert len(asked) == base + 3  # that answer agreed: quiet again

        answers.append(OSError("connection refused"))  # a failed fetch hides the timeline and tries again soon
        answers.append([])
        await frames(1, ["sw_power_cap"])
        await until(pilot, lambda: not panel.display, 5, what="the timeline hidden")
        await pilot.pause(0.4)
        await frames(1, ["sw_power_cap"])
        await until(pilot, lambda: len(asked) == base + 5, 5, what="the fetch after the failure")
