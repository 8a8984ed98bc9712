"""The client History's kept columns (tui/client.py): a chart's window read from a ready (ts, value) list must
be exactly what walking every sample gives, through appends, trims, late inserts, new epochs and clock steps;
and the columns kept are bounded."""

from __future__ import annotations

import random

from tui.client import COLUMNS_KEPT, History

KEYS = ["cpu", "mem", "gpu0.util", "gpu0.power", "gpu1.temp"]


def walk(history: History, key: str, since: float | None, at_least: int) -> list[tuple[float, float | None]]:
    """``History.points`` as it was, every sample read from the newest end (the History keeps that walk for
    times out of order)."""
    if since is None:
        return [(s.ts, s.values.get(key)) for s in history.samples]
    return history._points_scan(key, since, at_least)


def frame(seq: int, ts: float, rng: random.Random) -> dict:
    gpus = [
        {"index": i, "utilization_gpu_percent": rng.choice([None, rng.randint(0, 100)]), "power_w": rng.random() * 90, "temperature_c": 40 + i}
        for i in range(rng.choice([1, 2]))
    ]
    return {"seq": seq, "ts": ts, "host": {"cpu": {"percent": rng.random() * 100}, "memory": {"percent": 50.0}}, "gpus": gpus}


def test_windows_from_the_kept_columns_are_what_walking_the_samples_gives():
    rng = random.Random(7)
    for trial in range(30):
        history = History(maxlen=rng.choice([20, 50, 120]))
        seq, ts = 0, 1000.0
        for _ in range(400):
            roll = rng.random()
            if roll < 0.04:  # a late sample from before (a replay overlapping the live frames)
                old = max(1, seq - rng.randint(1, 30))
                history.add(frame(old, ts - rng.randint(1, 30), rng))
            elif roll < 0.06:
                history.new_epoch()  # the agent restarted: seq numbers begin again
                seq = 0
            else:
                seq += 1
                ts += rng.choice([1.0, 1.0, 1.0, 0.5, 5.0, -3.0 if roll > 0.97 else 1.0])  # now and then the clock steps back
                history.add(frame(seq, ts, rng))
            for key in rng.sample(KEYS, 2):
                since = rng.choice([None, ts - rng.randint(0, 200), ts + 5])
                at_least = rng.choice([0, 1, 32])
                assert history.points(key, since=since, at_least=at_least) == walk(history, key, since, at_least), (trial, key, since, at_least)
            for column in history._columns.values():
                assert len(column) == len(history.samples)


def test_the_columns_kept_are_bounded():
    history = History()
    history.add(frame(1, 1.0, random.Random(1)))
    for i in range(COLUMNS_KEPT * 3):
        history.points(f"key{i}", since=0.0)
    assert len(history._columns) == COLUMNS_KEPT
    assert "key0" not in history._columns and f"key{COLUMNS_KEPT * 3 - 1}" in history._columns  # the longest unread went


def test_a_clock_step_back_stops_the_bisect_only_while_it_is_held():
    rng = random.Random(3)
    history = History(maxlen=10)
    for seq, ts in enumerate([1.0, 2.0, 3.0, 2.5, 4.0], start=1):  # 3.0 -> 2.5: the clock stepped back
        history.add(frame(seq, ts, rng))
    assert history._descents == 1
    assert history.points("cpu", since=2.6) == walk(history, "cpu", 2.6, 0)  # walked: a bisect would find 3.0 first
    for seq in range(6, 16):
        history.add(frame(seq, float(seq), rng))
    assert history._descents == 0  # the step fell off the front: windows are slices again
    assert history.points("cpu", since=12.0, at_least=5) == walk(history, "cpu", 12.0, 5)
