"""Time-indexed chart maths: columns are wall time, so holes in the data stay holes."""

from __future__ import annotations

import random

import pytest

from tui.client import AgentClient, History, Sample, Target
from tui.widgets.chart import GAP_FACTOR, Buckets, anchored, bucket, duration, sample_interval, time_axis
from tui.widgets.history_charts import axis_rate
from tui.widgets.machine_card import TREND_S, trend
from tui.widgets.spark import spark_text


def blank_runs(values: list) -> list[tuple[int, int]]:
    """(first column, length) of every run of empty columns."""
    runs, start = [], None
    for i, v in enumerate(values + [0.0]):
        if v is None and start is None:
            start = i
        elif v is not None and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_a_25s_outage_is_a_gap_not_joined():
    end = 10_000.0
    points = [(t, 50.0) for t in range(int(end) - 300, int(end) + 1) if not 9_800 < t < 9_825]  # 1 Hz, 25 s hole
    values = bucket(points, end - 300, end, 100)  # 3 s a column
    assert blank_runs(values) == [(34, 7)]  # columns 34..40 (9802..9823 s): the 25 s between two samples, less the cells they fill


def test_columns_narrower_than_the_interval_leave_no_false_gaps():
    end = 1_000.0
    points = [(float(t), 10.0 * (t % 7)) for t in range(700, 1001)]  # 1 Hz over 300 s ...
    values = bucket(points, end - 300, end, 600)  # ... drawn 2 columns a second
    assert None not in values


def test_data_that_stopped_leaves_the_right_edge_empty():
    end = 1_000.0
    points = [(float(t), 20.0) for t in range(700, 961)]  # nothing for the last 40 s (agent down)
    values = bucket(points, end - 300, end, 300)
    assert values[259] == 20.0 and values[261:] == [None] * 39


def test_n_a_samples_are_gaps_and_a_column_keeps_its_peak():
    points = [(0.0, 1.0), (0.5, 9.0), (1.0, None), (2.0, None), (3.0, None), (4.0, None), (5.0, 3.0)]
    values = bucket(points, 0.0, 6.0, 6, interval=1.0)
    assert values[0] == 9.0 and values[1:5] == [None] * 4 and values[5] == 3.0


def test_time_axis_labels_span_and_now():
    line = time_axis(600, 80)
    assert len(line) == 80 and line.startswith("-10m") and line.endswith("now")
    assert "-5m" in line and "-7m30s" in line and "-2m30s" in line
    assert time_axis(3600, 20).split() == ["-1h", "-30m", "now"]
    assert time_axis(7 * 86400, 10).split() == ["-7d", "now"]


def test_labels_are_short():
    assert [duration(s) for s in (30, 300, 150, 3600, 5400, 86400, 7 * 86400)] == ["30s", "5m", "2m30s", "1h", "1h30m", "24h", "7d"]
    assert [axis_rate(v) for v in (0, 980, 1.3 * 1024**2, 52 * 1024**2, 3 * 1024**3)] == ["0B/s", "980B/s", "1.3M/s", "52M/s", "3.0G/s"]


def test_the_card_sparkline_from_its_window_equals_the_one_from_the_whole_history():
    rng = random.Random(7)
    for interval, hole in ((1.0, None), (5.0, (40.0, 70.0)), (30.0, None), (1.0, (100.0, 125.0)), (60.0, (200.0, 400.0))):
        h = History(maxlen=600)
        t, seq = 1000.0, 0
        while len(h.samples) < 600:
            t += interval * rng.uniform(0.9, 1.1)
            if hole and hole[0] <= (t - 1000.0) % 600 < hole[1]:
                continue
            seq += 1
            h.samples.append(Sample(0, seq, t, {"gpu0.util": rng.choice([None, rng.uniform(0, 100)])}))
        cl = AgentClient(Target("m", "http://m:8611", "t"))
        cl.history = h
        for now in (t, t + 2 * interval, t + 10 * interval):
            for width in (8, 20, 47):
                whole = h.points("gpu0.util")
                start, end = anchored(now - TREND_S, now, width)
                full = spark_text(bucket(whole, start, end, width, sample_interval(whole), now=now), width, 0.0, 100.0)
                assert trend(cl, "gpu0.util", now, width) == full, (interval, hole, now, width)
        assert GAP_FACTOR * interval < 600  # the window's margin stays inside the history kept


def test_the_card_sparkline_kept_frame_after_frame_equals_the_one_drawn_afresh():
    rng = random.Random(9)
    for width in (8, 20, 47):
        h, cl, kept = History(maxlen=120), AgentClient(Target("m", "http://m:8611", "t")), Buckets()
        cl.history = h
        t = 5000.0
        for seq in range(1, 400):
            t += rng.choice([1.0, 1.0, 1.0, 5.0, 30.0])
            h.samples.append(Sample(0, seq, t, {"gpu0.util": rng.choice([None, rng.uniform(0, 100)])}))
            while len(h.samples) > h.maxlen:
                h.samples.popleft()
            now = t + rng.random()
            assert trend(cl, "gpu0.util", now, width, kept) == trend(cl, "gpu0.util", now, width), (width, seq)


def test_anchored_windows_keep_their_columns_until_now_crosses_one():
    span, cols = 300.0, 45
    step = span / cols
    for now in [1_000_000.0 + 0.37 * i for i in range(200)]:
        start, end = anchored(now - span, now, cols)
        assert end - start == pytest.approx(span) and end - step - 1e-6 <= now < end  # the last column holds now
        assert (end / step) == pytest.approx(round(end / step), abs=1e-6)  # on a boundary of wall time
    a = anchored(1_000_000.1 - span, 1_000_000.1, cols)
    assert anchored(a[1] - step / 2 - span, a[1] - step / 2, cols) == a  # within one column: the same window


def test_kept_buckets_equal_bucketing_everything_every_frame():
    """Frames of a live chart: samples appended (some n/a, some holes), frames with no new sample while now moves
    on, a full history dropping its oldest (some inside the window when the bound is short), a resize, a late
    sample inserted in the middle, and the list handed over being the whole history or only the window's part of
    it (as ``window_points`` reads it): what Buckets keeps is what bucket() over all samples gives."""
    rng = random.Random(5)
    for run in range(60):
        kept, points, now, cols = Buckets(), [], 50_000.0, rng.choice([10, 45, 150])
        bound = rng.choice([40, 250, 600])  # a full history drops its oldest samples as new ones come
        windowed = run % 2 == 1
        for _frame in range(400 if run % 4 == 0 else 120):
            now += rng.choice([0.2, 1.0, 1.0, 1.0, 3.0, 25.0])
            if rng.random() < 0.85:  # else a frame with nothing new (now moves on)
                points.append((now - rng.random() * 0.1, None if rng.random() < 0.1 else rng.uniform(0, 100)))
            if rng.random() < 0.03:
                cols = rng.choice([10, 45, 150])
            if rng.random() < 0.03 and len(points) > 5:  # a late sample inserted at its place
                i = rng.randrange(1, len(points) - 1)
                points.insert(i, ((points[i - 1][0] + points[i][0]) / 2, 42.0))
            del points[: max(0, len(points) - bound)]
            if not points:
                continue
            start, end = anchored(now - 300.0, now, cols)
            given = list(points)
            if windowed:  # the window, the gap before it, the interval's tail: what window_points hands over
                since = now - 300.0 - GAP_FACTOR * sample_interval(points)
                first = next((i for i, p in enumerate(points) if p[0] >= since), len(points))
                given = points[max(0, min(first, len(points) - 32)) :]
            assert kept.values(given, start, end, cols, now) == bucket(points, start, end, cols, now=now)


def test_a_new_sample_changes_the_newest_column_only_until_the_plot_moves_a_column():
    """With the window on wall-time columns, frames within a column draw every older column the same (one
    changed cell a plot row at most) and the plot moves once a column; a window ending at now moved every
    column's samples a little with each frame."""
    rng = random.Random(3)
    span, cols, t0 = 300.0, 45, 70_000.0
    points = [(t0 - 300 + i, rng.uniform(0, 100)) for i in range(300)]
    frames = []
    for i in range(1, 30):
        now = t0 + i
        points.append((now, rng.uniform(0, 100)))
        start, end = anchored(now - span, now, cols)
        frames.append((end, bucket(points, start, end, cols, now=now)))
    for (end_a, a), (end_b, b) in zip(frames, frames[1:], strict=False):
        if end_a == end_b:
            assert a[:-1] == b[:-1]
        else:
            assert a[1:-1] == b[:-2]  # shifted by one column: the same complete columns, one place left
    assert len({end for end, _ in frames}) == 5  # 29 s at 6.7 s a column


def test_spark_rows_are_the_cells_each_level_fills():
    """Every row of every column as the plain definition gives it: full blocks below the level, the partial block at
    it, blanks above (the bottom row shows the lowest block for a zero), a blank column for a gap; the same for
    values drawn before (remembered per scale and height) and past the heights kept."""
    from tui.widgets.spark import BLOCKS, spark_rows

    def cell(level: int | None, r: int) -> str:
        if level is None:
            return " "
        part = level - r * 8
        return "█" if part >= 8 else (BLOCKS[part - 1] if part > 0 else (" " if r else BLOCKS[0]))

    from tui.widgets import spark

    rng = random.Random(4)
    for _ in range(800):
        rows, width = rng.choice([rng.randint(2, 8), rng.randint(2, 30)]), rng.randint(1, 40)  # past the heights kept
        lo, hi = rng.choice([(0.0, 100.0), (20.0, 100.0), (0.0, 1.0), (5.0, 5.0)])
        pool = [rng.uniform(lo - 10, hi + 10) for _ in range(6)] + [lo, hi]  # repeated values: drawn from the memo
        values = [rng.choice([None, rng.choice(pool), rng.uniform(lo - 10, hi + 10)]) for _ in range(rng.randint(0, 50))]
        if rng.random() < 0.05:
            spark._CELLS.clear()
        vals = values[-width:]
        span = (hi - lo) or 1.0
        levels = [None if v is None else int((min(hi, max(lo, v)) - lo) / span * rows * 8 + 0.5) for v in vals]
        expected = [" " * (width - len(vals)) + "".join(cell(level, r) for level in levels) for r in range(rows - 1, -1, -1)]
        assert spark_rows(values, width, lo, hi, rows) == expected
        assert len(spark._COLUMNS) <= 17


def test_spark_text_is_the_block_each_value_rounds_to_whatever_it_drew_before():
    """One row: each value's block on its scale, a blank for a gap, blanks before too few values; the same with the
    cells it remembers from earlier lines (repeated values, other scales, more values than it keeps)."""
    from tui.widgets import spark
    from tui.widgets.spark import BLOCKS, spark_text

    rng = random.Random(9)
    pool = [rng.uniform(-20, 120) for _ in range(40)] + [float(v) for v in range(0, 101)] + [0.0, -0.0, 1.0, 100.0]
    for i in range(3000):
        width = rng.randint(0, 40)
        lo, hi = rng.choice([(0.0, 100.0), (20.0, 100.0), (0.0, 1.0), (5.0, 5.0), (rng.uniform(0, 50), 100.0)])
        values = [rng.choice([None, rng.choice(pool), rng.uniform(lo - 10, hi + 10)]) for _ in range(rng.randint(0, 50))]
        if i % 500 == 0:
            spark._CELLS.clear()
        vals = values[-width:] if width > 0 else []
        span = (hi - lo) or 1.0
        blocks = [" " if v is None else BLOCKS[int((min(hi, max(lo, v)) - lo) / span * (len(BLOCKS) - 1) + 0.5)] for v in vals]
        assert spark_text(values, width, lo, hi) == (" " * (width - len(vals)) + "".join(blocks) if width > 0 else "")
    # bounded: a full memo is cleared before a line adds its values (at most 40 here), and so are the scales
    assert all(len(cells) <= spark.CELLS_KEPT + 40 for cells in spark._CELLS.values()) and len(spark._CELLS) <= 65


def test_the_plot_moving_a_column_folds_the_new_samples_only(monkeypatch):
    """When the window moves on by a column (every span/cols seconds), the kept columns shift instead of every
    sample in the window being folded again; the equality with bucket() is the test above."""
    import tui.widgets.chart as chart

    folded: list[int] = []
    fold = chart._fold

    def counting(points, *a):
        points = list(points)
        folded.append(len(points))
        return fold(points, *a)

    monkeypatch.setattr(chart, "_fold", counting)
    kept, cols, span = Buckets(), 45, 300.0
    step = span / cols
    points = [(100_000.0 + i, float(i % 97)) for i in range(400)]
    now = points[-1][0] + 0.3
    start, end = anchored(now - span, now, cols)
    kept.values(list(points), start, end, cols, now)  # a new list each frame, as window_points hands over
    assert folded == [400]  # the first frame: all of them
    while anchored(now - span, now, cols) == (start, end):  # on to the next column
        now += 1.0
        points.append((now - 0.3, 50.0))
    folded.clear()
    start, end = anchored(now - span, now, cols)
    assert step > 1.0 and len(points) == 401  # one new sample, in the new column
    values = kept.values(list(points), start, end, cols, now)
    assert folded == [1], folded  # the sample that opened the new column
    assert values == bucket(points, start, end, cols, now=now)
