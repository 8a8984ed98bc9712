"""Keyboard paths as the user sees them: help from BINDINGS, named palette entries, the `:` command line,
a footer that fits 80 columns, `/` on the overview and models, `a` for n/a reasons, one `h` toast, the theme kept."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Markdown, Static

from tests.helpers.tui import until
from tests.helpers.tui_fakes import CATALOG, app_for, fleet, spark_client
from tui.app import SparkdeckApp
from tui.commands import Command, CommandError, complete, parse
from tui.config import load_theme, save_theme
from tui.keys import fit_footer
from tui.screens.command import CommandLine
from tui.screens.containers import ContainersScreen
from tui.screens.help import HelpScreen
from tui.screens.logs import LogsScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.screens.processes import ProcessesScreen
from tui.widgets.figures import Figures
from tui.widgets.machine_card import MachineCard


def footer_keys(app) -> list[tuple[str, str]]:
    return [(k.key_display, k.description) for k in app.screen.query("FooterKey")]


def help_text(app) -> str:
    assert isinstance(app.screen, HelpScreen)
    return app.screen.text()


# -- pure pieces ------------------------------------------------------------------------
def test_commands_parse_complete_and_say_what_is_wrong():
    machines, models = ["spark", "h200"], ["vllm", "sglang"]
    assert parse(":containers", machines, models) == Command("containers")
    assert parse("co", machines, models) == Command("containers")  # a unique prefix
    assert parse(":q", machines, models) == Command("quit")
    assert parse(":machine h200", machines, models) == Command("machine", "h200")
    assert parse(":forward vllm", machines, models) == Command("forward", "vllm")
    with pytest.raises(CommandError, match="unknown command “:frobnicate”; commands: :overview"):
        parse(":frobnicate", machines, models)
    with pytest.raises(CommandError, match="no machine “dgx”; machines: spark, h200"):
        parse(":machine dgx", machines, models)
    with pytest.raises(CommandError, match=":machine needs NAME"):
        parse(":machine", machines, models)
    with pytest.raises(CommandError, match="ambiguous"):
        parse(":m", machines, models)
    assert complete(":cont", machines, models) == "containers"
    assert complete("mach", machines, models) == "machine "
    assert complete("machine h", machines, models) == "machine h200"
    assert complete("forward s", machines, models) == "forward sglang"
    assert complete("zz", machines, models) is None


def test_fit_footer_abbreviates_then_drops_the_least_important():
    items = [("s", "Start", 1), ("f", "Forward port", 1), ("/", "Filter", 0), ("?", "Help", 0), ("m", "Models", 4)]
    assert fit_footer(items, 200) == [(0, "Start"), (1, "Forward port"), (2, "Filter"), (3, "Help"), (4, "Models")]
    assert fit_footer(items, 50) == [(0, "Start"), (1, "Forward"), (2, "Filter"), (3, "Help"), (4, "Models")]
    assert fit_footer(items, 40) == [(0, "Start"), (1, "Forward"), (2, "Filter"), (3, "Help")]
    assert fit_footer(items, 20) == [(2, "Filter"), (3, "Help")]


def test_theme_is_saved_into_client_toml_keeping_the_rest(tmp_path):
    path = tmp_path / "client.toml"
    path.write_text("# my thresholds\n[alerts]\ngpu_temp_c = 80\n")
    save_theme("dracula", path)
    save_theme("nord", path)
    assert load_theme(path) == "nord"
    assert path.read_text() == '# my thresholds\n[alerts]\ngpu_temp_c = 80\n\n[ui]\ntheme = "nord"\n'
    assert load_theme(tmp_path / "absent.toml") is None


# -- what the user sees -------------------------------------------------------------------
async def test_help_lists_every_key_of_the_current_screen():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        text = help_text(app)
        assert "This screen (detail)" in text and "- `h` — Chart range\n" in text
        assert "- `:` — Command\n" in text and "- `q` `^c` — Quit\n" in text and "- `[` — Prev machine\n" in text
        assert "- `^p` — command palette" in text
        assert app.screen.query_one(Markdown)  # shown, not only built
        await pilot.press("escape")
        for screen, keys in (
            (ModelsScreen(0, catalog=CATALOG), ["`f` — Forward port", "`g` — Reload catalog", "`/` — Filter"]),
            (
                LogsScreen(0, "a1" * 32, "vllm-qwen"),
                ["`e` — End+follow", "`/` — Search", "`n` — Next match", "`N` — Prev match", "`t` — Timestamps", "`w` — Wrap"],
            ),
            (ProcessesScreen(0), ["`k` — SIGTERM", "`g` — Reload"]),
            (ContainersScreen(0), ["`f` — Forward port", "`S` — Sort", "`esc` — Clear filter"]),
        ):
            app.push_screen(screen)
            await pilot.pause()
            await pilot.press("question_mark")
            text = help_text(app)
            for key in keys:
                assert key in text, (type(screen).__name__, key)
            await pilot.press("escape")
            app.pop_screen()
            await pilot.pause()


async def test_palette_entries_have_names_and_quit_is_listed_once():
    app = app_for([spark_client()], "containers")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        titles = [c.title for c in commands]
        assert titles.count("Quit") == 1 and "Help" in titles and "Filter" in titles
        helps = {c.title: c.help for c in commands}
        assert helps["Help"] == "key ?" and helps["Filter"] == "key /" and helps["Quit"] == "key q ^c"
        assert not any("question_mark" in str(c.help) or "slash" in str(c.help) for c in commands)


async def test_footer_at_80_columns_keeps_filter_and_help():
    app = app_for([spark_client()], "containers")
    async with app.run_test(size=(80, 24)) as pilot:
        # the footer recomposes after a resize: wait for it to settle, not for its first key
        await until(pilot, lambda: {("/", "Filter"), ("?", "Help"), ("s", "Start")} <= set(footer_keys(app)), what="/, ? and s in the footer")
        keys = footer_keys(app)
        assert ("?", "Help") in keys and ("s", "Start") in keys
        assert ("c", "Containers") not in keys  # the view already on screen
        assert sum(len(k) + 2 + len(d) + 1 for k, d in keys) <= 80  # nothing cut at the edge
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: ("f", "Forward port") in footer_keys(app), what="full names at 160 columns")
        assert ("m", "Models") in footer_keys(app) and ("^p", "palette") in footer_keys(app)


async def test_command_line_switches_views_opens_machines_and_reports_unknown_commands():
    app = app_for(fleet(), "overview")
    async with app.run_test(size=(120, 40)) as pilot:
        names = [cl.target.name for cl in app.clients]
        await pilot.press("colon")
        assert isinstance(app.screen, CommandLine)
        await pilot.press(*"frob", "enter")
        error = app.screen.query_one("#command-error", Static)
        assert error.display and "unknown command “:frob”" in str(error.render())
        await pilot.press("escape")
        assert not isinstance(app.screen, CommandLine)

        await pilot.press("colon", *"mach", "tab")
        assert app.screen.query_one(Input).value == "machine "
        await pilot.press(*names[1][:2], "tab", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MachineScreen) and app.current == 1

        await pilot.press("colon", *"containers", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ContainersScreen) and app.screen.index == 1
        await pilot.press("colon", *"q", "enter")
        await pilot.pause()
    assert app.return_code == 0


async def test_slash_filters_the_overview_and_the_models():
    app = app_for(fleet(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        names = [cl.target.name for cl in app.clients]
        await pilot.press("slash", *names[1], "enter")
        await pilot.pause()
        cards = list(app.screen.query(MachineCard))
        assert [c.display for c in cards] == [n == names[1] for n in names]
        assert "filter" in str(app.screen.query_one("#overview-title", Static).render())
        assert app.focused is cards[1]
        await pilot.press("escape")
        assert all(c.display for c in app.screen.query(MachineCard))

        app.current = 0
        app.push_screen(ModelsScreen(0, catalog=CATALOG))
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        everything = table.row_count
        first = CATALOG[0]["name"]
        await pilot.press("slash", *first, "enter")
        await pilot.pause()
        assert 1 <= table.row_count < everything and first in [str(table.get_row_at(r)[0]) for r in range(table.row_count)]
        await pilot.press("escape")
        assert table.row_count == everything


async def focused_figures(app, pilot) -> tuple[Figures, list[str]]:
    """The detail screen's GPU figures, focused, and their n/a fields."""
    await pilot.pause()
    figures = app.screen.query_one(Figures)
    figures.focus()
    await pilot.pause()
    return figures, figures.na_keys()


def why_na(app) -> list[str]:
    """The messages of the "why n/a" toasts on screen."""
    return [str(n.message) for n in app._notifications if n.title == "why n/a"]


async def test_a_says_why_the_focused_field_reads_na():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        figures, na = await focused_figures(app, pilot)
        assert len(na) >= 2, "the GB10 fixture has n/a fields (power limit, fan)"
        assert figures.cursor == na[0]
        await pilot.press("a")
        await until(pilot, lambda: bool(why_na(app)), what="the n/a toast")
        toasts = [n for n in app._notifications if n.title == "why n/a"]
        assert [str(n.message) for n in toasts] == [figures.reason(na[0])] and "not available on this machine" in toasts[0].message
        await pilot.press("a", "a")
        await pilot.pause()
        assert len(why_na(app)) == 1  # replaced, not stacked

        await pilot.press("tab")  # the next n/a field, highlighted, and `a` names it
        assert app.focused is figures and figures.cursor == na[1]
        assert highlighted(figures) == {na[1]}
        await pilot.press("a")
        await until(pilot, lambda: why_na(app) == [figures.reason(na[1])], what="the second field's reason")
        await pilot.press("shift+tab")
        assert figures.cursor == na[0]
        for _ in na[1:]:
            await pilot.press("tab")
        await pilot.press("tab")  # past the last n/a field: focus moves on, and `a` lists every reason on the screen
        assert app.focused is not figures
        await pilot.press("a")
        await until(pilot, lambda: why_na(app) == ["\n".join(figures.reasons())], what="every reason")


def highlighted(figures: Figures) -> set[str]:
    """The fields drawn with the cursor's background."""
    focus_bg = figures._cell_styles()[1].bgcolor
    out = set()
    for y, row in enumerate(figures.cells(figures.size.width)):
        x = 0
        for seg in figures.render_line(y):
            if seg.style and seg.style.bgcolor == focus_bg:
                out |= {key for key, x0, w in row if x0 <= x < x0 + w}
            x += seg.cell_length
    return out


async def test_tab_enters_the_figures_at_the_first_na_field_shift_tab_at_the_last_and_a_click_picks_one():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        figures, na = await focused_figures(app, pilot)
        assert highlighted(figures) == {na[0]}
        for _ in na:  # through every n/a field, and out
            await pilot.press("tab")
        assert app.focused is not figures and highlighted(figures) == set()  # the highlight goes with the focus
        await pilot.press("shift+tab")  # back in from behind: at the last one
        assert app.focused is figures and figures.cursor == na[-1] and highlighted(figures) == {na[-1]}
        await pilot.press("shift+tab")
        for _ in na[:-1]:
            await pilot.press("shift+tab")
        assert app.focused is not figures
        await pilot.press("tab")  # in again from the front: at the first one
        assert app.focused is figures and figures.cursor == na[0]
        cells = {key: (x, y) for y, row in enumerate(figures.cells(figures.size.width)) for key, x, _ in row}
        await pilot.click(figures, offset=cells[na[-1]])
        assert figures.cursor == na[-1] and highlighted(figures) == {na[-1]}
        await pilot.press("a")
        await until(pilot, lambda: why_na(app) == [figures.reason(na[-1])], what="the clicked field's reason")


async def test_hovering_an_na_field_shows_its_reason():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        figures = app.screen.query_one(Figures)
        cells = {key: (x, y) for y, row in enumerate(figures.cells(figures.size.width)) for key, x, _ in row}
        key = figures.na_keys()[0]
        await pilot.hover(figures, offset=cells[key])
        assert figures.tooltip == figures.reason(key)
        await pilot.hover(figures, offset=cells["utilization_gpu_percent"])
        assert figures.tooltip is None
        await pilot.hover(figures, offset=cells[key])
        figures.show({**figures.shown, key: ("12 W", None)})  # the field under the mouse gets a value: no reason left to show
        assert figures.tooltip is None


async def test_figures_redraw_at_a_new_column_count():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        figures = app.screen.query_one(Figures)
        columns = figures.columns
        figures.show(dict(figures.shown), columns=9 - columns)  # 4 <-> 5 a row: another height, drawn at once
        await pilot.pause()
        assert figures.size.height == figures.row_count
        drawn = [figures.render_line(y).text for y in range(figures.row_count)]
        assert all(line.strip() for line in drawn) and "Memory" in drawn[-1], drawn


async def test_h_toasts_replace_each_other():
    app = app_for([spark_client()], "detail")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("h", "h", "h")
        await pilot.pause()
        charts = [n for n in app._notifications if str(n.message).startswith("charts:")]
        assert len(charts) == 1


async def test_the_chosen_theme_is_there_after_a_restart(tmp_path):
    path = tmp_path / "client.toml"
    app = SparkdeckApp([], connect=False, config_path=path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "dracula"
        await until(pilot, lambda: path.exists(), what="client.toml written")
    assert load_theme(path) == "dracula"
    again = SparkdeckApp([], connect=False, config_path=path)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "dracula"


async def test_forward_command_opens_models_and_forwards_that_models_port():
    cl = spark_client()

    async def catalog() -> list[dict]:
        return CATALOG

    cl.models = catalog  # the catalog an agent would answer
    app = app_for([cl], "detail")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("colon", *"forward vllm", "enter")
        await until(pilot, lambda: any("vllm: http://spark-01.local:8000" in str(n.message) for n in app._notifications), what="the forward toast")
        assert isinstance(app.screen, ModelsScreen)
        await pilot.press("colon", *"forward nope", "enter")  # on the models screen the names are known
        error = app.screen.query_one("#command-error", Static)
        assert "no model “nope” on this machine; models: vllm, sglang" in str(error.render())
