"""One process as /proc tells it: start time, owner, command line, CPU time, RSS, whether it is
a container's main process. Raw procfs reads (agent/procfs.py), so ``proc_root`` can point
tests at a fake tree and nothing waits on a disk.

The start time in clock ticks since boot (``/proc/PID/stat`` field 22) is the process's identity:
a pid that is reused gets a new one, so comparing it is how the signal route avoids hitting a
stranger that inherited the number.
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass

from agent.procfs import line_value, read_bytes

CMDLINE_MAX = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    start_ticks: int
    cpu_ticks: int  # utime + stime
    rss_bytes: int
    state: str


def read_stat(pid: int, proc_root: str = "/proc") -> ProcInfo | None:
    """The process's stat fields, or None when it is gone (or a zombie: it has exited)."""
    raw = read_bytes(f"{proc_root}/{int(pid)}/stat")
    if not raw:
        return None
    # the command name (field 2) may hold spaces and ')': the fields start after the last ')'
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        state = fields[0].decode()
        if state in ("Z", "X"):
            return None
        return ProcInfo(pid, int(fields[19]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE, state)
    except (IndexError, ValueError):
        return None


def boot_time(proc_root: str = "/proc") -> float | None:
    value = line_value(read_bytes(f"{proc_root}/stat"), b"btime ")
    return float(value) if value and value.strip().isdigit() else None


def start_time(info: ProcInfo, btime: float | None) -> float | None:
    """Wall-clock start (Unix seconds, 2 decimals): the same figure every time for one process."""
    return None if btime is None else round(btime + info.start_ticks / CLK_TCK, 2)


def cmdline(pid: int, proc_root: str = "/proc") -> str | None:
    """The command line, arguments joined by spaces, cut at CMDLINE_MAX characters."""
    raw = read_bytes(f"{proc_root}/{int(pid)}/cmdline")
    if not raw:
        return None  # a kernel thread, or gone
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    # a newline or escape sequence inside an argument (python -c "...") must not reach a terminal
    return _CONTROL.sub(" ", text)[:CMDLINE_MAX]


def owner(pid: int, proc_root: str = "/proc") -> tuple[int | None, str | None, bool]:
    """(real uid, its user name, whether it is pid 1 of its own pid namespace: a container's main
    process, which the kernel shields from signals it has no handler for)."""
    status = read_bytes(f"{proc_root}/{int(pid)}/status")
    uid_line = line_value(status, b"Uid:")
    uid = int(uid_line.split()[0]) if uid_line and uid_line.split() and uid_line.split()[0].isdigit() else None
    nspid = (line_value(status, b"NSpid:") or b"").split()
    ns_init = len(nspid) > 1 and nspid[-1] == b"1"
    name = None
    if uid is not None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)  # a uid from inside a container, unknown on the host
    return uid, name, ns_init
