"""Log lines that a hostile or broken client could repeat without end, at a bounded rate.

A local process can make the agent refuse thousands of handshakes a second, or hit a
broken tokens.json on every request; one line per event would flood the journal. Each
``RateLimitedLog`` lets ``burst`` lines through per ``period_s`` and counts the rest; the
next line that gets through says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LEFT_OUT = " (%d similar line(s) left out since the last one)"


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, *, period_s: float = 60.0, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.period_s = period_s
        self.burst = burst
        self.clock = clock
        self._window_start = -float("inf")
        self._sent = 0
        self.suppressed = 0

    def admit(self) -> int | None:
        """None when this period's burst is spent (the event is counted); else how many events
        were left out since the last one admitted."""
        now = self.clock()
        if now - self._window_start >= self.period_s:
            self._window_start, self._sent = now, 0
        if self._sent >= self.burst:
            self.suppressed += 1
            return None
        self._sent += 1
        left_out, self.suppressed = self.suppressed, 0
        return left_out

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless this period's burst is spent; True when the line was written."""
        left_out = self.admit()
        if left_out is None:
            return False
        self.logger.log(level, msg + LEFT_OUT if left_out else msg, *args, *((left_out,) if left_out else ()))
        return True


class ThrottleFilter(logging.Filter):
    """The same bound for lines another library writes (uvicorn's warnings on bad requests):
    records whose message template is in ``templates`` pass at most ``burst`` a period."""

    def __init__(self, templates: set[str], *, period_s: float = 60.0, burst: int = 10):
        super().__init__()
        self.limits = {t: RateLimitedLog(logging.getLogger(__name__), period_s=period_s, burst=burst) for t in templates}

    def filter(self, record: logging.LogRecord) -> bool:
        limit = self.limits.get(record.msg) if isinstance(record.msg, str) else None
        if limit is None:
            return True
        left_out = limit.admit()
        if left_out is None:
            return False
        if left_out:
            record.msg, record.args = record.msg + LEFT_OUT, (*(record.args or ()), left_out)
        return True
