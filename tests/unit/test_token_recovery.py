"""Pure logic behind issue 12's items 1, 5 and 7: the rate-limited log, a broken tokens.json
and the stream slots (the attacks themselves run against a real agent in tests/faults)."""

from __future__ import annotations

import json
import logging
import os

from agent.api.deps import StreamSlots
from agent.auth import RETRY_S, TokenStore
from agent.ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_limited_log_lets_a_burst_through_then_counts(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t.ratelog"), period_s=60, burst=2, clock=clock)
    with caplog.at_level(logging.INFO, "t.ratelog"):
        written = [limited.log(logging.INFO, "refused %d", i) for i in range(5)]
        clock.t += 61
        limited.log(logging.INFO, "refused %d", 5)
    assert written == [True, True, False, False, False]
    assert [r.getMessage() for r in caplog.records] == ["refused 0", "refused 1", "refused 5 (3 similar line(s) left out since the last one)"]


def test_broken_tokens_file_fails_closed_logs_once_and_recovers_without_mtime_change(tmp_path, caplog):
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    token = store.add("laptop", "read")
    clock = Clock()
    store.clock = clock
    good = path.read_bytes()
    stat = path.stat()
    path.write_bytes(b"{" + b" " * (len(good) - 1))  # corrupt, same size, same mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # seen once as a change
    with caplog.at_level(logging.INFO, "sparkdeck.auth"):
        assert store.verify(token) is None
        assert store.broken and "not a valid token file" in store.broken
        for _ in range(20):
            clock.t += RETRY_S
            assert store.verify(token) is None
        path.write_bytes(good)  # fixed in place: same size...
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # ...and the same mtime as the corrupt file
        assert store.verify(token) is None  # retried at most once per RETRY_S
        clock.t += RETRY_S
        info = store.verify(token)
    assert info is not None and info.name == "laptop" and store.broken is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage() and "token add" in errors[0].getMessage()
    assert any("readable again" in r.getMessage() for r in caplog.records)


def test_wrong_shapes_fail_closed(tmp_path):
    path = tmp_path / "tokens.json"
    shapes: list[object] = [[], {"tokens": 3}, {"tokens": ["x"]}, {"version": 1}]
    for content in shapes:
        path.write_text(json.dumps(content))
        store = TokenStore(path)
        assert store.verify("sdk_" + "a" * 43) is None and store.broken


def test_stream_slots_cap_per_name():
    slots = StreamSlots(2)
    assert [slots.take("a"), slots.take("a"), slots.take("a"), slots.take("b")] == [True, True, False, True]
    slots.give_back("a")
    assert slots.take("a") and not slots.take("a")
    for _ in range(3):
        slots.give_back("a")
    assert "a" not in slots.open
