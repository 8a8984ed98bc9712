"""TextPanel's line split (the same lines, spans and attributes as Rich's ``Text.split("\\n", allow_blank=True)``), its line
segments (the same as Rich's ``Text.render`` under the widget's style) and its line strips."""

from __future__ import annotations

import random

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.strip import Strip

from tui.widgets.panel import split_lines
from tui.widgets.styles import line_strip, text_segments

STYLES: list[str | Style] = ["dim", "bold", Style(color="red"), Style(bold=True, italic=True), ""]


def random_text(rng: random.Random) -> Text:
    plain = "".join(rng.choice("ab \n") for _ in range(rng.randint(0, 40)))
    text = Text(plain, style=rng.choice(["", "dim"]), justify=rng.choice([None, "left"]), overflow=rng.choice([None, "fold"]))
    for _ in range(rng.randint(0, 8)):  # spans anywhere: across newlines, on them, empty, at either end
        a = rng.randint(0, len(plain))
        text.spans.append(Span(a, rng.randint(a, len(plain)), rng.choice(STYLES)))
    return text


def described(lines: list[Text]) -> list[tuple]:
    return [(line.plain, line.spans, line.style, line.justify, line.overflow) for line in lines]


def test_split_lines_is_richs_split():
    rng = random.Random(7)
    for _ in range(3000):
        text = random_text(rng)
        assert described(split_lines(text)) == described(list(text.split("\n", allow_blank=True))), repr(text)


def test_split_lines_cases():
    card = Text.assemble(("GPU0 ", "dim"), ("66%\n", "bold"), ("Mem ", "dim"), "1.0 GiB\n")
    assert [t.plain for t in split_lines(card)] == ["GPU0 66%", "Mem 1.0 GiB", ""]
    assert split_lines(card)[0].spans == [Span(0, 5, "dim"), Span(5, 8, "bold")]
    one = Text("no newline", "dim")
    copy = split_lines(one)[0]
    assert copy == one and copy is not one  # a copy, as Rich's: wrap_lines strips its lines in place


def test_line_strip_is_the_three_strips_it_replaces():
    """One Strip, the same segments (styled, cut or padded) as ``Strip(s).apply_style(base).extend_cell_length(w, pad)``
    (TextPanel) and ``Strip(s).crop_extend(0, w, None).apply_style(base)`` (TimeChart), wide characters included."""
    rng = random.Random(11)
    bases = [None, Style(), Style(color="white", bgcolor="black"), Style(dim=True)]
    for _ in range(2000):
        segs = [
            Segment(rng.choice(["ab", "é", "宽", " ", "x" * rng.randint(1, 9)]), rng.choice([None, Style(bold=True), Style(color="red")]))
            for _ in range(rng.randint(0, 6))
        ]
        width, base, pad = rng.randint(1, 30), rng.choice(bases), rng.choice([None, Style(reverse=False)])
        if Strip(segs).cell_length <= width:  # a panel's lines are wrapped to fit; a chart's may not
            panel = Strip(segs).apply_style(base) if base is not None else Strip(segs)
            assert list(line_strip(segs, width, base, pad)) == list(panel.extend_cell_length(width, pad))
        if base is not None:
            chart = Strip(segs).crop_extend(0, width, None).apply_style(base)
            got = line_strip(segs, width, base, base or None)
            assert list(got) == list(chart) and got.cell_length == chart.cell_length == width


def appended_text(rng: random.Random) -> Text:
    """A line as panels build theirs: styled pieces appended one after another (spans that never overlap)."""
    bases: list[str | Style] = ["", "dim", Style(color="blue")]
    text = Text(style=rng.choice(bases))
    for _ in range(rng.randint(0, 8)):
        text.append(rng.choice(["GPU0 ", "66%", " ", "", "宽", "n/a"]), rng.choice([*STYLES, None]))
    return text


def test_text_segments_are_richs_render_under_the_widget_style():
    """The same segments as ``Segment.apply_style(text.render(console), under)`` — for appended lines through the fast
    path, with one memo kept across lines as a panel keeps it, and for nested or out-of-order spans through Rich."""
    console = Console()
    rng = random.Random(5)
    unders = [None, Style.null(), Style(color="white", bgcolor="black"), Style(dim=True)]
    for under in unders:
        memo: dict = {}
        for _ in range(1500):
            text = appended_text(rng) if rng.random() < 0.7 else random_text(rng)
            expected = list(Segment.apply_style(text.render(console), under))
            assert text_segments(text, console, under, memo) == expected, (repr(text), under)
            assert text_segments(text, console, under) == expected


def test_text_segments_memo_is_bounded():
    console, memo = Console(), dict[tuple, Style]()
    for i in range(2000):  # a style made afresh for every line, each one different
        text_segments(Text.assemble(("x", Style(color=f"#{i:06x}"))), console, Style(bold=True), memo)
        assert len(memo) <= 257


def test_wrap_lines_wraps_a_long_line_once_while_it_stays_the_same(monkeypatch):
    """A card's long line (an engine error) was wrapped again every frame: now its wrap is kept while it does not
    change — the same lines as wrapping afresh, Rich's wrap called once, and only this call's lines kept."""
    from rich.console import Console as RichConsole

    from tui.widgets.panel import wrap_lines

    console = RichConsole()
    long = "Containers unavailable: no Docker engine socket at /nonexistent/docker.sock"

    def card(cpu: int, tail: str = long) -> Text:
        return Text.assemble(("GPU0 ", "dim"), f"{cpu}%\n", (tail, "dim"), "\nno alerts")

    calls: list[str] = []
    real_wrap = Text.wrap
    monkeypatch.setattr(Text, "wrap", lambda self, *a, **k: (calls.append(self.plain), real_wrap(self, *a, **k))[1])
    kept: dict = {}
    for cpu in (3, 4, 5):
        got = wrap_lines(card(cpu), console, 40, kept)
        fresh = wrap_lines(card(cpu), console, 40)
        assert described(got) == described(fresh)
    assert calls.count(long) == 1 + 3  # once with the kept wraps, three times without
    wrap_lines(card(6, long + " (retrying)"), console, 40, kept)
    assert len(kept) == 1 and next(iter(kept))[0].endswith("(retrying)")  # the old line's wrap is gone
