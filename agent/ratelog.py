"""Log lines that a hostile or broken client could repeat without end, at a bounded rate.

A local process can make the agent refuse thousands of handshakes a second, or hit a
broken tokens.json on every request; one line per event would flood the journal. Each
``RateLimitedLog`` lets ``burst`` lines through per ``period_s`` and counts the rest; the
next line that gets through says how many were left out.
"""

from __future__ import annotations

import logging
import time
from typing import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, *, period_s: float = 60.0, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.period_s = period_s
        self.burst = burst
        self.clock = clock
        self._window_start = -float("inf")
        self._sent = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless this period's burst is spent; True when the line was written."""
        now = self.clock()
        if now - self._window_start >= self.period_s:
            self._window_start, self._sent = now, 0
        if self._sent >= self.burst:
            self.suppressed += 1
            return False
        self._sent += 1
        if self.suppressed:
            msg += " (%d similar line(s) left out since the last one)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.log(level, msg, *args)
        return True
