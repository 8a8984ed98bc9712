"""Per-client replay budget: a token bucket of bytes that a replay may overdraw once.

A replay (``subscribe`` with ``since_seq``) costs the agent CPU and bandwidth in
proportion to what it sends, while the request is a few bytes: without a budget
one client asking for ``since_seq: 0`` every few milliseconds pins a core. Each
client's bucket refills at ``rate`` bytes/s up to ``burst``; a replay may start
while the balance is positive and is charged what it actually sent when it ends,
so a deep replay (the whole history) still goes through once, then the client
waits until the debt is paid off. Small gap-filling replays stay cheap.
"""

from __future__ import annotations

import time

REPLAY_BURST_BYTES = 8 * 2**20  # a few full rings of 1 Hz frames (300 x ~7.5 KB = 2.2 MB)
REPLAY_RATE_BYTES_S = 1 * 2**20  # refill: about one full default ring every 2 s


class ReplayBudget:
    def __init__(self, burst: int = REPLAY_BURST_BYTES, rate: float = REPLAY_RATE_BYTES_S, clock=time.monotonic):
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._balance = float(burst)
        self._at = clock()
        self.busy = False  # a replay is queued or running: another one waits for it to end

    def balance(self) -> float:
        now = self._clock()
        self._balance = min(float(self.burst), self._balance + (now - self._at) * self.rate)
        self._at = now
        return self._balance

    def retry_after_s(self) -> float:
        """Seconds until a replay would be allowed again (0 when it is now)."""
        if self.busy:
            return 1.0
        bal = self.balance()
        return 0.0 if bal > 0 else (1 - bal) / self.rate

    def try_start(self) -> bool:
        if self.busy or self.balance() <= 0:
            return False
        self.busy = True
        return True

    def charge(self, sent_bytes: int) -> None:
        """A replay ended having sent ``sent_bytes``."""
        self.balance()
        self._balance -= sent_bytes
        self.busy = False
