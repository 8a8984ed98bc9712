"""What one look of the memory guard costs: read MemAvailable and PSI, decide (nothing trips).

    .venv/bin/python -m bench.guard_check [N]

Prints µs per look and the share of one core at the default poll_s (0.25 s).
"""

from __future__ import annotations

import asyncio
import sys
import time

from agent.guard.service import MemoryGuard
from agent.settings import MemoryGuardSettings


async def main(n: int) -> None:
    settings = MemoryGuardSettings(enabled=True)
    guard = MemoryGuard(settings, 0, broadcast=lambda _text: None)
    guard._loop = asyncio.get_running_loop()
    guard._arm()
    path = guard.trigger.path if guard.trigger else "not armed"
    try:
        start = time.perf_counter()
        for _ in range(n):
            await guard.check()
        per_look = (time.perf_counter() - start) / n
    finally:
        guard._disarm()
        guard.reader.close()
    print(
        f"memory guard: {per_look * 1e6:.1f} µs per look ({n} looks); at poll_s={settings.poll_s} that is "
        f"{100 * per_look / settings.poll_s:.4f} % of one core; PSI trigger {path}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
