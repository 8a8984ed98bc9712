"""What the memory guard reads between samples: MemAvailable, PSI memory pressure, a PSI trigger.

Both files are kept open and re-read with ``pread`` (agent.procfs.KeptFile): one read of
/proc/meminfo costs about 20 µs, so the guard can look four times a second without
waiting for the 1 s sample. Nothing here allocates more than the file's few kB.
"""

from __future__ import annotations

import errno
import os
import select

from agent.procfs import KeptFile, meminfo_field, psi_line

# Windows tried for the PSI trigger, shortest first: a 1 s window needs CAP_SYS_RESOURCE;
# without it the kernel (≥ 6.5) accepts only multiples of 2 s for unprivileged triggers.
TRIGGER_WINDOWS_US = (1_000_000, 2_000_000)


class MemoryReader:
    def __init__(self, proc_root: str = "/proc"):
        self._meminfo = KeptFile(f"{proc_root}/meminfo")
        self._pressure = KeptFile(f"{proc_root}/pressure/memory")

    def available_bytes(self) -> int | None:
        return meminfo_field(self._meminfo.read(), b"MemAvailable")

    def full_pressure(self) -> tuple[float, int] | None:
        """PSI ``full``: (avg10 %, total stall µs); None where the kernel has no PSI."""
        return psi_line(self._pressure.read(), b"full")

    def close(self) -> None:
        self._meminfo.close()
        self._pressure.close()


class PsiTrigger:
    """A PSI trigger on /proc/pressure/memory: the kernel wakes us when ``full`` stall time
    in a window passes a threshold, so a fast allocation is seen at once, not at the next poll.

    The trigger fd signals POLLPRI, which asyncio's readers (EPOLLIN) never see; it is put in
    an epoll set of its own, and that epoll fd — readable when the trigger fired — is what the
    event loop watches (``fileno()``). ``path`` says which path ran: "armed" with its window,
    or why not (no PSI, permission, kernel refused).
    """

    def __init__(self, psi_full_percent: float, proc_root: str = "/proc"):
        self.fd = -1
        self.window_s: float | None = None
        self.path = "not armed"
        self._epoll: select.epoll | None = None
        if psi_full_percent <= 0:
            self.path = "off: psi_full is 0"
            return
        file = f"{proc_root}/pressure/memory"
        last_err = ""
        for window_us in TRIGGER_WINDOWS_US:
            threshold_us = max(1, min(window_us, int(window_us * psi_full_percent / 100)))
            try:
                fd = os.open(file, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                self.path = f"unavailable: cannot open {file} ({os.strerror(exc.errno or errno.EIO)})"
                return
            try:
                # the kernel drops the last byte written (it puts its NUL there): send one
                os.write(fd, f"full {threshold_us} {window_us}\0".encode())
            except OSError as exc:
                os.close(fd)
                last_err = os.strerror(exc.errno or errno.EIO)
                continue
            try:
                self._epoll = select.epoll(1)
                self._epoll.register(fd, select.EPOLLPRI)
            except OSError as exc:  # not a pollable PSI file (e.g. a plain file standing in for /proc)
                os.close(fd)
                self.close()
                self.path = f"unavailable: cannot poll {file} ({os.strerror(exc.errno or errno.EIO)}); polling avg10 only"
                return
            self.fd = fd
            self.window_s = window_us / 1e6
            self.path = f"armed: full {threshold_us // 1000} ms per {window_us // 1000} ms window"
            return
        self.path = f"unavailable: the kernel refused a trigger ({last_err}); polling avg10 only"

    @property
    def armed(self) -> bool:
        return self.fd >= 0

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll is not None else -1

    def drain(self) -> bool:
        """True if the trigger fired since the last call (clears the epoll readiness)."""
        if self._epoll is None:
            return False
        try:
            events = self._epoll.poll(0)
        except OSError:
            return False
        return any(ev & (select.EPOLLPRI | select.EPOLLERR) for _, ev in events)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
