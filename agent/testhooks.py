"""Test-only hooks, off unless SPARKDECK_TEST_HOOKS=1 is in the agent's environment.

SIGUSR2 blocks the event loop (a sleep inside a loop callback) while the process
lives: the failure the watchdog exists for, which SIGSTOP does not reproduce (a
stopped process is not a live one with a stuck loop). The booted-systemd test uses it
to show that the sampler's WATCHDOG=1 pings stop and systemd restarts the agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

log = logging.getLogger("sparkdeck.testhooks")
BLOCK_S = 3600.0


def _block_loop() -> None:
    log.warning("test hook: blocking the event loop (SIGUSR2)")
    time.sleep(BLOCK_S)


def install(loop: asyncio.AbstractEventLoop, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("SPARKDECK_TEST_HOOKS") != "1":
        return False
    loop.add_signal_handler(signal.SIGUSR2, _block_loop)
    log.warning("test hooks are on (SPARKDECK_TEST_HOOKS=1): SIGUSR2 blocks the event loop")
    return True
