"""TextPanel's line split (the same lines, spans and attributes as Rich's ``Text.split("\\n", allow_blank=True)``) and its line strips."""

from __future__ import annotations

import random

from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.strip import Strip

from tui.widgets.panel import split_lines
from tui.widgets.styles import line_strip

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
