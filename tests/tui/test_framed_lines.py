"""FramedLines draws a panel's rows as Textual's own StylesCache does, cell for cell and style for style,
under every kind of border, padding, outline and content effect, before and after a style change; and it
takes its short way for a card's content rows (else it would cost what it was written to save)."""

from __future__ import annotations

import itertools

from rich.text import Text
from textual._styles_cache import StylesCache
from textual.app import App, ComposeResult
from textual.geometry import Region

from tui.widgets.framed import FramedLines
from tui.widgets.panel import TextPanel

# (CSS for the panel's id, does the short way apply): every branch of StylesCache.render_line a panel could take
CASES = {
    "plain": ("border: round $primary; padding: 0 1;", True),
    "heavy-pad": ("border: heavy red; padding: 1 2;", True),
    "no-border": ("border: none; padding: 0 0;", True),
    "left-only": ("border-left: tall green; border-right: none; padding: 0 1 0 0;", True),
    "titled": ("border: round $accent; padding: 0 1; border-title-align: center;", True),
    "background": ("border: solid $warning; background: $panel 60%; padding: 0 1;", True),
    "outline": ("border: round $primary; outline: solid red; padding: 0 1;", True),
    "outline-bare": ("border: none; outline: heavy blue; padding: 0;", False),
    "outline-pad": ("border: none; outline: solid red; padding: 0 1;", True),  # the outline covers rows 0 and 2: line 1 shows
    "text-opacity": ("border: round $warning; text-opacity: 70%; padding: 0 1;", False),
    "tint": ("border: round $primary; tint: red 30%; padding: 0 1;", False),
    "opacity": ("border: round $primary; opacity: 50%; padding: 0 1;", False),
    "hatch": ("border: round $primary; hatch: cross $primary 40%; padding: 0 1;", False),
    "tall-pad": ("border: round $primary; padding: 2 1; height: 12;", True),  # blank rows below the content
}


class Lines(TextPanel):
    def build(self, width: int) -> Text:
        more = "".join(f"\nmore {i}" for i in range(self.data.get("more", 0)))
        return Text.assemble(("GPU0 ", "dim"), ("66%", "bold"), "  ", ("▅▆▇█", "green"), "\n", "Mem 1.0 GiB\nlast line with é 宽 ✓", more)


class Panels(App):
    CSS = "\n".join(f"#{name} {{ {css} }}" for name, (css, _) in CASES.items()) + "\n#plain.-alt { border: round $error; }"

    def compose(self) -> ComposeResult:
        for name in CASES:
            yield Lines(id=name)

    def on_mount(self) -> None:
        self.query_one("#titled", Lines).border_title = "card [b]title[/b]"
        self.query_one("#titled", Lines).border_subtitle = "sub"
        for panel in self.query(Lines):
            panel.show({"x": 1})


def textual_rows(panel: TextPanel) -> list:
    """The rows as Textual 8.2.8's own line cache draws them, from scratch."""
    return list(StylesCache().render_widget(panel, Region(0, 0, *panel.region.size)))


def framed_rows(panel: TextPanel) -> list:
    whole = Region(0, 0, *panel.region.size)
    panel._styles_cache.set_dirty(whole)  # every row drawn again, the edges kept
    return list(panel.render_lines(whole))


async def test_rows_are_textuals_under_every_style():
    app = Panels()
    async with app.run_test(size=(70, 90)) as pilot:
        await pilot.pause()
        for name, (_, short) in CASES.items():
            panel = app.query_one(f"#{name}", Lines)
            assert isinstance(panel._styles_cache, FramedLines)
            before = panel._styles_cache.fast_rows
            rows = framed_rows(panel)
            assert [list(r) for r in rows] == [list(r) for r in textual_rows(panel)], name
            assert [r.cell_length for r in rows] == [panel.region.width] * panel.region.height, name
            took = panel._styles_cache.fast_rows - before
            assert (took > 0) == short, (name, took)
            if short:  # the content rows, and only those (three lines of text; tall-pad has blank ones below)
                assert took == panel.content_size.height - (2 if name == "outline-pad" else 0), (name, took)


async def test_a_style_change_takes_the_edges_again():
    app = Panels()
    async with app.run_test(size=(70, 90)) as pilot:
        await pilot.pause()
        panel = app.query_one("#plain", Lines)
        first = framed_rows(panel)
        for step in itertools.islice(itertools.cycle([True, False]), 4):  # a class that restyles the border, on and off
            panel.set_class(step, "-alt")
            await pilot.pause()
            rows = framed_rows(panel)
            assert [list(r) for r in rows] == [list(r) for r in textual_rows(panel)]
            assert (rows[1] != first[1]) == step  # the content row's edges follow the border colour
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        assert [list(r) for r in framed_rows(panel)] == [list(r) for r in textual_rows(panel)]
        for more in (2, 0, 1):  # taller and shorter at the same width: the rows between the borders move
            panel.show({"more": more})
            await pilot.pause()
            rows = framed_rows(panel)
            assert len(rows) == 5 + more
            assert [list(r) for r in rows] == [list(r) for r in textual_rows(panel)], more


async def test_a_card_row_that_changes_takes_the_short_way():
    from tests.helpers.tui_fakes import app_for, gpu_gb10, snapshot_frame, spark_client
    from tui.widgets.machine_card import MachineCard

    clients = [spark_client() for _ in range(2)]
    app = app_for(clients, "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        card = app.screen.query(MachineCard).first()
        cache = card._styles_cache
        assert isinstance(cache, FramedLines)
        before = cache.fast_rows
        for step in range(1, 4):  # new GPU figures: the GPU row changes
            cl = clients[0]
            cl.handle_frame(snapshot_frame(cl.last_seq + 1, "spark-01", [gpu_gb10(500.0 + 37 * step)], None))
            app._tick()
            await pilot.pause()
        assert cache.fast_rows - before >= 3
        assert [list(r) for r in framed_rows(card)] == [list(r) for r in textual_rows(card)]


async def test_a_widget_with_no_dirty_row_returns_the_rows_textual_would_draw():
    """The kept rows: asked again with nothing dirty, the same rows come back without drawing; after a style change,
    a repaint of one row, new text or a resize, they are what Textual draws then."""
    app = Panels()
    async with app.run_test(size=(70, 90)) as pilot:
        await pilot.pause()

        def same_as_textual(panel: TextPanel) -> bool:
            return [list(r) for r in panel.render_lines(Region(0, 0, *panel.region.size))] == [list(r) for r in textual_rows(panel)]

        for name in CASES:
            panel = app.query_one(f"#{name}", Lines)
            cache = panel._styles_cache
            assert isinstance(cache, FramedLines)
            whole = Region(0, 0, *panel.region.size)
            first = panel.render_lines(whole)
            kept = cache.kept_renders
            assert [list(r) for r in panel.render_lines(whole)] == [list(r) for r in first] and cache.kept_renders == kept + 1, name
            assert same_as_textual(panel), name
        panel = app.query_one("#plain", Lines)
        panel.set_class(True, "-alt")  # restyled: Textual clears the cache
        await pilot.pause()
        assert same_as_textual(panel)
        panel.show({"more": 1})  # new text, a new height
        await pilot.pause()
        assert same_as_textual(panel)
        panel._strips.pop(1, None)
        panel.refresh(Region(0, 1, panel.size.width, 1))  # one row repainted
        assert same_as_textual(panel)
        await pilot.resize_terminal(50, 90)
        await pilot.pause()
        assert panel.region.width == 50 and same_as_textual(panel)
