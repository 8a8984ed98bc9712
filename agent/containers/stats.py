"""Per-container CPU, memory and network figures read straight from cgroup files and procfs.

Measured in docs/containers.md: reading these files costs about 0.05 ms of
agent CPU per container (files kept open and re-read with ``pread``, parsed as
bytes; the limit re-read every 10 s) and nothing in dockerd, while each request to the
engine's stats endpoint waits up to a second for its collector (two without
``one-shot``) and a stats stream per container keeps dockerd and the agent
busy all the time. ``StatsReader.read_all`` blocks, so the tracker runs it in a
worker thread.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from agent.procfs import KeptFile, line_value, net_dev, read_bytes, to_int

UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as a number near 2**63
LIMIT_REREAD_S = 10.0  # limits change only with `docker update`; reading them every tick is waste


class CgroupFiles:
    """One container's files: those read every tick are kept open (KeptFile); close() when done."""

    def __init__(self, cpu: str, memory_dir: str, v2: bool, net_dev: str):
        self.v2 = v2
        self.cpu = KeptFile(cpu)  # cpuacct.usage (ns, v1) or cpu.stat (usage_usec, v2)
        self.usage = KeptFile(f"{memory_dir}/{'memory.current' if v2 else 'memory.usage_in_bytes'}")
        self.stat = KeptFile(f"{memory_dir}/memory.stat")
        self.net = KeptFile(net_dev)  # the container's network namespace, through its init pid
        self.limit = f"{memory_dir}/{'memory.max' if v2 else 'memory.limit_in_bytes'}"  # read every 10 s: not kept

    def close(self) -> None:
        for kept in (self.cpu, self.usage, self.stat, self.net):
            kept.close()


@dataclass(frozen=True)
class Counters:
    t: float
    cpu_ns: int | None
    memory_bytes: int | None
    memory_limit_bytes: int | None
    rx_bytes: int | None
    tx_bytes: int | None
    limit_t: float = 0.0  # when memory_limit_bytes was read


def parse_cgroup_file(text: str) -> dict[str, str]:
    """{controller: path} from /proc/PID/cgroup; the v2 unified entry is keyed ''."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctrl in parts[1].split(",") if parts[1] else [""]:
                out[ctrl] = parts[2]
    return out


def cgroup_files(pid: int, proc_root: str = "/proc", sys_root: str = "/sys") -> CgroupFiles | None:
    try:
        with open(f"{proc_root}/{pid}/cgroup", encoding="ascii", errors="replace") as f:
            ctrls = parse_cgroup_file(f.read())
    except OSError:
        return None
    base = f"{sys_root}/fs/cgroup"
    net = f"{proc_root}/{pid}/net/dev"
    if "memory" in ctrls:  # v1 (or hybrid): per-controller hierarchies
        cpu_path = ctrls.get("cpuacct", ctrls.get("cpu", ""))
        for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            if os.path.isdir(f"{base}/{mount}"):
                return CgroupFiles(f"{base}/{mount}{cpu_path}/cpuacct.usage", f"{base}/memory{ctrls['memory']}", False, net)
        return None
    if "" in ctrls:
        d = f"{base}{ctrls['']}"
        return CgroupFiles(f"{d}/cpu.stat", d, True, net)
    return None


def _keyed(text: bytes | None, key: bytes) -> int | None:
    """The value of ``key`` in a flat-keyed file (cpu.stat, memory.stat)."""
    return to_int(line_value(text, key + b" "))


def parse_net_dev(text: str | bytes) -> tuple[int, int]:
    """(rx, tx) bytes summed over every interface except loopback."""
    nics = net_dev(text.encode() if isinstance(text, str) else text)
    return sum(v[0] for k, v in nics.items() if k != "lo"), sum(v[1] for k, v in nics.items() if k != "lo")


def read_counters(files: CgroupFiles, prev: Counters | None = None) -> Counters:
    """One reading; the memory limit is taken from ``prev`` while it is under 10 s old."""
    now = time.monotonic()
    cpu_text = files.cpu.read()
    reuse_limit = prev is not None and now - prev.limit_t < LIMIT_REREAD_S
    usage = to_int(files.usage.read())
    limit = None if reuse_limit else to_int(read_bytes(files.limit))  # v2 "max": no limit, None
    if files.v2:
        usec = _keyed(cpu_text, b"usage_usec")
        cpu_ns = usec * 1000 if usec is not None else None
        inactive = _keyed(files.stat.read(), b"inactive_file")
    else:
        cpu_ns = to_int(cpu_text)
        inactive = _keyed(files.stat.read(), b"total_inactive_file")
    if reuse_limit:
        lim, limit_t = prev.memory_limit_bytes, prev.limit_t  # type: ignore[union-attr]
    else:
        lim, limit_t = (limit if limit is not None and limit < UNLIMITED else None), now
    # like `docker stats`: page cache that can be dropped at once is not counted as use
    mem = usage - (inactive or 0) if usage is not None else None
    net = files.net.read()
    rx, tx = parse_net_dev(net) if net else (None, None)
    return Counters(now, cpu_ns, max(mem, 0) if mem is not None else None, lim, rx, tx, limit_t)


def _rate(a: int | None, b: int | None, dt: float) -> float | None:
    if a is None or b is None or dt <= 0 or b < a:
        return None
    return (b - a) / dt


def figures(prev: Counters | None, cur: Counters) -> dict[str, Any]:
    dt = cur.t - prev.t if prev else 0.0
    cpu = _rate(prev.cpu_ns, cur.cpu_ns, dt) if prev else None
    rx = _rate(prev.rx_bytes, cur.rx_bytes, dt) if prev else None
    tx = _rate(prev.tx_bytes, cur.tx_bytes, dt) if prev else None
    return {
        "cpu_percent": round(cpu / 1e9 * 100, 1) if cpu is not None else None,  # 100 = one core, as docker stats
        "memory_bytes": cur.memory_bytes,
        "memory_limit_bytes": cur.memory_limit_bytes,
        "net_rx_bytes_s": round(rx) if rx is not None else None,
        "net_tx_bytes_s": round(tx) if tx is not None else None,
    }


class StatsReader:
    """Keeps the previous counters per container so each read yields rates, and each running
    container's files open; a container that stops or restarts has its files closed."""

    def __init__(self, proc_root: str = "/proc", sys_root: str = "/sys"):
        self.proc_root = proc_root
        self.sys_root = sys_root
        self._files: dict[tuple[str, int], CgroupFiles | None] = {}
        self._prev: dict[str, Counters] = {}
        self._lock = threading.Lock()  # read_all runs in a worker thread; close() must not pull fds from under it

    def read_all(self, running: dict[str, int]) -> dict[str, dict[str, Any]]:
        """{container id: figures} for {container id: init pid}. Blocking: call from a thread."""
        with self._lock:
            return self._read_all(running)

    def close(self, timeout: float = 2.0) -> bool:
        """Close every kept file; False if a read still running kept them open past ``timeout``."""
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            for files in self._files.values():
                if files is not None:
                    files.close()
            self._files.clear()
            self._prev.clear()
            return True
        finally:
            self._lock.release()

    def _read_all(self, running: dict[str, int]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cid, pid in running.items():
            key = (cid, pid)
            if key not in self._files:
                self._files[key] = cgroup_files(pid, self.proc_root, self.sys_root)
            files = self._files[key]
            if files is None:
                continue
            cur = read_counters(files, self._prev.get(cid))
            out[cid] = figures(self._prev.get(cid), cur)
            self._prev[cid] = cur
        for key in [k for k in self._files if k[0] not in running or running[k[0]] != k[1]]:
            files = self._files.pop(key)
            if files is not None:
                files.close()
        for cid in [c for c in self._prev if c not in running]:
            del self._prev[cid]
        return out
