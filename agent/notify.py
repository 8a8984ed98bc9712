"""systemd's notify protocol (sd_notify), without libsystemd.

READY=1 once the API listens, WATCHDOG=1 from the sampler loop (so a hung sampler
misses its deadline and systemd restarts the service), STOPPING=1 on shutdown.
Everything is a no-op outside systemd (no NOTIFY_SOCKET).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("sparkdeck.notify")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        watchdog_ok = usec and usec.isdigit() and (not pid or pid == str(os.getpid()))
        # ping at half the deadline, as sd_watchdog_enabled(3) advises
        self.watchdog_interval_s = int(usec) / 2e6 if usec and watchdog_ok else None
        self._last_ping = 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):  # abstract namespace
            addr = "\0" + addr[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), addr)
            return True
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Called every sampler tick; sends at most one ping per half deadline."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")
