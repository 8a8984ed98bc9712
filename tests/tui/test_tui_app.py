"""App behaviour without a network: latest-wins collapse, palette, keys, mouse, filter."""

from __future__ import annotations

from textual.widgets import Input

from tests.helpers.tui_fakes import CONTAINERS, clock, fleet, gpu_gb10, snapshot_frame, spark_client
from tui.app import SparkdeckApp
from tui.screens.containers import ContainersScreen
from tui.screens.machine import MachineScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.containers_table import ContainersTable


def app_for(clients, view="overview") -> SparkdeckApp:
    return SparkdeckApp(clients=clients, clock=clock, connect=False, start_view=view)


async def test_ticks_arriving_while_busy_collapse_but_history_keeps_every_sample():
    cl = spark_client()
    app = app_for([cl], "detail")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        before_updates, before_hist = app.ui_updates, len(cl.history)
        for seq in range(121, 171):  # 50 frames while the UI gets no turn
            cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
        await pilot.pause(0.5)
        assert len(cl.history) == before_hist + 50
        assert 1 <= app.ui_updates - before_updates <= 2  # one refresh (two at most with the rate limit), not 50
        assert cl.latest["seq"] == 170


async def test_every_binding_is_in_the_command_palette():
    app = app_for([spark_client()], "containers")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        titles = {cmd.title for cmd in app.get_system_commands(app.screen)}
        assert {"Start", "Stop", "Restart", "Remove", "Logs", "Filter", "Sort", "Overview", "Detail", "Containers", "Models", "Help", "Reconnect"} <= titles
        assert "Theme" in " ".join(titles)  # Textual's own commands stay (themes)


async def test_keys_and_mouse_navigate():
    app = app_for(fleet())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)
        await pilot.click("#card-1")
        await pilot.pause()
        assert isinstance(app.screen, MachineScreen) and app.screen.index == 1
        await pilot.press("c")
        assert isinstance(app.screen, ContainersScreen) and app.screen.index == 1
        await pilot.press("left_square_bracket")
        assert isinstance(app.screen, ContainersScreen) and app.screen.index == 0
        await pilot.press("o")
        assert isinstance(app.screen, OverviewScreen) and app.focused.id == "card-0"
        await pilot.press("down", "down", "enter")  # keyboard only
        assert isinstance(app.screen, MachineScreen) and app.screen.index == 2
        assert app.focused.id == "detail"  # arrows scroll the detail


async def test_filter_and_header_click_sort():
    app = app_for([spark_client()], "containers")
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ContainersTable)
        assert table.row_count == 4
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"vllm")
        await pilot.pause()
        assert [r["name"] for r in table.by_id.values()] == ["vllm-qwen"]
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == 4 and app.screen.query_one("#filter").display is False
        x = sum(col.get_render_width(table) for col in list(table.columns.values())[:2]) + 2  # inside the CPU% header
        await pilot.click(ContainersTable, offset=(x, 0))
        await pilot.pause()
        assert table.sort_key == "cpu_percent" and table.sort_reverse  # busiest first
        assert next(iter(table.by_id.values()))["name"] == "vllm-qwen"


async def test_ctrl_c_quits_like_other_terminal_tools():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


async def test_a_frame_arriving_while_the_app_shuts_down_is_ignored(monkeypatch):
    # Shutdown prunes a screen's children before the screen itself; a frame handled in that window
    # used to reach update_view and fail on the missing connection bar (a CI flake).
    from tui.messages import MachineChanged
    from tui.widgets.conn_bar import ConnBar

    cl = spark_client()
    app = app_for([cl], "models")
    refreshed = []

    def refresh_during_prune(self) -> None:
        app.post_message(MachineChanged(0))  # handled once the children are gone, before the screen goes
        refreshed.append(True)

    monkeypatch.setattr(ConnBar, "on_unmount", refresh_during_prune, raising=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
    assert refreshed  # the frame came in while the screens were torn down, and nothing raised


async def test_a_guard_frame_raises_a_toast_and_an_alert():
    from tests.helpers.tui_fakes import NOW, guard_frame
    from tui.widgets.alerts_panel import AlertsPanel

    cl = spark_client()
    app = app_for([cl], "detail")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert cl.handle_frame(guard_frame(NOW - 1)) == "guard"
        assert cl.handle_frame(guard_frame(NOW - 1)) is None  # the same action re-sent after a reconnect
        await pilot.pause(0.5)
        toasts = [n for n in app._notifications if "memory guard" in str(n.title)]
        assert len(toasts) == 1 and toasts[0].severity == "error" and "sparkdeck-vllm" in str(toasts[0].message)
        assert any(a.key.startswith("guard.") and a.severity == "critical" for a in app.alerts[0])
        panel = app.screen.query_one(AlertsPanel)
        assert panel.has_class("-active") and "memory guard" in panel.build(100).plain


async def test_the_current_theme_is_textuals_without_the_registry_copy():
    """SparkdeckApp.current_theme reads the registry directly; it answers what Textual's own property does for every
    theme, after a theme is registered again under its name, and for a name list or an unknown name."""
    from textual.app import App
    from textual.theme import Theme

    app = SparkdeckApp(clients=[spark_client()], clock=clock, connect=False, start_view="overview")
    async with app.run_test(size=(100, 30)) as pilot:
        textuals = vars(App)["current_theme"].fget  # Textual's own property, read past the override
        for name in list(app.available_themes):
            app.theme = name
            await pilot.pause()
            assert app.current_theme is textuals(app), name
        app.theme = "nord"
        app.register_theme(Theme("nord", primary="#112233", dark=True))  # the same name, another theme
        assert app.current_theme is textuals(app) and app.current_theme.primary == "#112233"
        setattr(app, "_reactive_theme", "no-such-theme, nord")  # noqa: B010 - a name list (Textual picks the first known), past the validator
        assert app.current_theme is textuals(app) and app.current_theme.name == "nord"
        setattr(app, "_reactive_theme", "no-such-theme")  # noqa: B010
        assert app.current_theme is textuals(app) and app.current_theme.name == "textual-dark"
