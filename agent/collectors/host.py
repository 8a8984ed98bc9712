"""Host telemetry: CPU, memory, disks, network, and hwmon sensors.

psutil for CPU and disks; /proc/meminfo, /proc/net/dev and /sys/class/hwmon read
directly (each in one read, once per tick), because "used" memory must be MemTotal - MemAvailable (the only honest
figure on the Spark's unified memory) and because hwmon also carries fan duty and
``power*_input`` that psutil does not expose. Every call here blocks: the sampler
runs ``collect`` in a worker thread. Rates are computed between two samples, so
the first sample reports them as null.
"""

from __future__ import annotations

import glob
import os
import platform
import socket
import time
from collections.abc import Callable
from typing import Any

import psutil

from agent.collectors.memory import MEMINFO_FIELDS, parse_meminfo, picture, read_pressure
from agent.collectors.thermal import ThermalZones
from agent.procfs import net_dev, read_bytes

# Filesystems that are not user storage.
_SKIP_FSTYPES = {"squashfs", "tmpfs", "devtmpfs", "overlay", "nsfs", "proc", "sysfs", "cgroup2", "autofs"}
PARTITIONS_REREAD_S = 30.0  # the mount table, with one overlay per container, is parsed at most this often


MEMINFO_KEYS = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")


def meminfo(proc_root: str = "/proc", keys: tuple[str, ...] = MEMINFO_KEYS) -> dict[str, int]:
    """The given /proc/meminfo fields in bytes (absent ones left out); {} if unreadable.

    Looked up by key in one read rather than parsing all ~55 lines: the GPU collector (GB10)
    and the host collector each call this every tick."""
    return parse_meminfo(read_bytes(f"{proc_root}/meminfo"), keys)


def read_meminfo(proc_root: str = "/proc") -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes, or None if unreadable."""
    m = meminfo(proc_root, ("MemTotal", "MemAvailable"))
    return (m["MemTotal"], m["MemAvailable"]) if len(m) == 2 else None


def read_net_dev(proc_root: str = "/proc") -> dict[str, tuple[int, int]]:
    """{interface: (rx bytes, tx bytes)} from one read of /proc/net/dev, no per-NIC objects."""
    return net_dev(read_bytes(f"{proc_root}/net/dev"))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _read_num(path: str) -> float | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_hwmon(sys_root: str = "/sys") -> dict[str, list[dict[str, Any]]]:
    """Every temperature, fan and power sensor under /sys/class/hwmon."""
    temps: list[dict[str, Any]] = []
    fans: list[dict[str, Any]] = []
    power: list[dict[str, Any]] = []
    for hw in sorted(glob.glob(f"{sys_root}/class/hwmon/hwmon*")):
        chip = _read(f"{hw}/name") or os.path.basename(hw)

        def label(kind: str, n: str, hw: str = hw) -> str:
            return _read(f"{hw}/{kind}{n}_label") or f"{kind}{n}"

        for path in sorted(glob.glob(f"{hw}/temp*_input")):
            n = os.path.basename(path)[4:-6]
            value = _read_num(path)
            if value is None:
                continue
            high = _read_num(f"{hw}/temp{n}_max")
            crit = _read_num(f"{hw}/temp{n}_crit")
            temps.append(
                {
                    "chip": chip,
                    "label": label("temp", n),
                    "current_c": value / 1000,
                    "high_c": high / 1000 if high else None,
                    "critical_c": crit / 1000 if crit else None,
                }
            )
        fan_ids = {os.path.basename(p)[3:-6] for p in glob.glob(f"{hw}/fan*_input")}
        fan_ids |= {os.path.basename(p)[3:] for p in glob.glob(f"{hw}/pwm*") if os.path.basename(p)[3:].isdigit()}
        for n in sorted(fan_ids, key=lambda x: int(x) if x.isdigit() else 0):
            rpm = _read_num(f"{hw}/fan{n}_input")
            pwm = _read_num(f"{hw}/pwm{n}")
            if rpm is None and pwm is None:
                continue
            fans.append(
                {
                    "chip": chip,
                    "label": label("fan", n),
                    "rpm": rpm,
                    "duty_percent": round(pwm * 100 / 255, 1) if pwm is not None else None,
                    "max_rpm": _read_num(f"{hw}/fan{n}_max"),
                }
            )
        for path in sorted(glob.glob(f"{hw}/power*_input") + glob.glob(f"{hw}/power*_average")):
            base = os.path.basename(path)
            n = base[5:].split("_", 1)[0]
            if base.endswith("_average") and os.path.exists(f"{hw}/power{n}_input"):
                continue
            value = _read_num(path)
            if value is not None:
                power.append({"chip": chip, "label": label("power", n), "power_w": round(value / 1e6, 2)})
    if not temps:  # some ARM boards expose only thermal zones
        for zone in sorted(glob.glob(f"{sys_root}/class/thermal/thermal_zone*")):
            value = _read_num(f"{zone}/temp")
            if value is not None:
                temps.append({"chip": "thermal", "label": _read(f"{zone}/type") or os.path.basename(zone), "current_c": value / 1000})
    return {"temperatures": temps, "fans": fans, "power": power}


def host_info(proc_root: str = "/proc") -> dict[str, Any]:
    """Static facts, read once."""
    cpu_model = None
    try:
        with open(f"{proc_root}/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "Model", "Hardware"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = read_meminfo(proc_root)
    os_name = platform.system()
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", os_name)
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "os": os_name,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu_model": cpu_model,
        "cpu_count": psutil.cpu_count(logical=True),
        "boot_time": psutil.boot_time(),
        "memory_total_bytes": mem[0] if mem else psutil.virtual_memory().total,
    }


def physical_nics(counters: dict[str, Any], sys_root: str = "/sys", known: dict[str, bool] | None = None) -> dict[str, Any]:
    """Interfaces backed by a device (Ethernet, Wi-Fi, ConnectX), not veth/bridges/tunnels.

    Container traffic crosses a veth, docker0 and the physical NIC: summing every
    interface would count it three times and list one veth per container. Where no
    interface has a device (some VMs), every interface but lo is used. ``known``
    caches the answer per name (one stat per veth per tick adds up); names that
    are gone are forgotten.
    """
    cache = known if known is not None else {}
    for gone in [k for k in cache if k not in counters]:
        del cache[gone]
    for k in counters:
        if k not in cache:
            cache[k] = os.path.exists(f"{sys_root}/class/net/{k}/device")
    real = {k: v for k, v in counters.items() if cache[k]}
    return real or {k: v for k, v in counters.items() if k != "lo"}


class HostCollector:
    def __init__(self, *, proc_root: str = "/proc", sys_root: str = "/sys", clock: Callable[[], float] = time.monotonic, reserve_bytes: int = 0):
        self.proc_root = proc_root
        self.reserve_bytes = reserve_bytes  # memory.reserve_gib: kept free of models
        self.sys_root = sys_root
        self.clock = clock
        self._prev: tuple[float, Any, Any] | None = None
        self._boot = psutil.boot_time()
        self._hostname = socket.gethostname()
        self._nic_has_device: dict[str, bool] = {}
        self._partitions: tuple[float, list[Any]] = (-PARTITIONS_REREAD_S, [])
        self._thermal = ThermalZones(sys_root)  # its own re-list timer: the injected clock paces the rates
        psutil.cpu_percent(percpu=True)  # primes psutil's per-call CPU delta

    def collect(self) -> dict[str, Any]:
        per_core = psutil.cpu_percent(percpu=True)
        load: tuple[float | None, ...]
        try:
            load = tuple(round(x, 2) for x in os.getloadavg())  # two decimals, as uptime(1); the rest is fixed-point noise
        except OSError:
            load = (None, None, None)
        m = meminfo(self.proc_root, MEMINFO_FIELDS)  # memory and swap from one read (psutil's swap also parses vmstat)
        memory = picture(m, read_pressure(self.proc_root), self.reserve_bytes)
        if memory is None:
            vm = psutil.virtual_memory()
            memory = picture({"MemTotal": vm.total, "MemAvailable": vm.available}, read_pressure(self.proc_root), self.reserve_bytes)
        if "SwapTotal" in m and "SwapFree" in m:
            swap_total, swap_used = m["SwapTotal"], m["SwapTotal"] - m["SwapFree"]
        else:
            sw = psutil.swap_memory()
            swap_total, swap_used = sw.total, sw.used
        sensors = read_hwmon(self.sys_root)
        return {
            "hostname": self._hostname,
            "uptime_s": round(time.time() - self._boot, 1),
            "cpu": {
                "percent": round(sum(per_core) / len(per_core), 1) if per_core else None,
                "per_core_percent": per_core or None,
                "load_1": load[0],
                "load_5": load[1],
                "load_15": load[2],
                "count": len(per_core) or None,
            },
            "memory": memory,
            "swap": {"total_bytes": swap_total, "used_bytes": swap_used, "percent": round(swap_used * 100 / swap_total, 1) if swap_total else 0.0},
            "disks": self._disks(),
            **self._rates(),
            "temperatures": sensors["temperatures"],
            "fans": sensors["fans"],
            "power": sensors["power"],
            "thermal_zones": self._thermal.read(),
        }

    def _disks(self) -> list[dict[str, Any]]:
        out, seen = [], set()
        now = self.clock()
        if now - self._partitions[0] >= PARTITIONS_REREAD_S:
            self._partitions = (now, psutil.disk_partitions(all=False))
        for part in self._partitions[1]:
            if part.fstype in _SKIP_FSTYPES or part.device in seen or part.mountpoint.startswith(("/snap/", "/boot/efi")):
                continue
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue
            seen.add(part.device)
            out.append(
                {
                    "mount": part.mountpoint,
                    "device": part.device,
                    "fstype": part.fstype,
                    "total_bytes": usage.total,
                    "used_bytes": usage.used,
                    "percent": usage.percent,
                }
            )
        return out

    def _rates(self) -> dict[str, Any]:
        now = self.clock()
        try:
            disk = psutil.disk_io_counters()
        except Exception:
            disk = None
        nics = physical_nics(read_net_dev(self.proc_root), self.sys_root, self._nic_has_device)
        prev, self._prev = self._prev, (now, disk, nics)
        disk_io: dict[str, float | None] = {"read_bytes_s": None, "write_bytes_s": None}
        net: dict[str, Any] = {"rx_bytes_s": None, "tx_bytes_s": None, "per_nic": {}}
        if prev is None:
            return {"disk_io": disk_io, "net": net}
        dt = now - prev[0]
        if dt <= 0:
            return {"disk_io": disk_io, "net": net}

        def rate(a: float, b: float) -> float:
            return round(max(b - a, 0) / dt, 1)  # counters reset on NIC re-creation

        if disk is not None and prev[1] is not None:
            disk_io = {"read_bytes_s": rate(prev[1].read_bytes, disk.read_bytes), "write_bytes_s": rate(prev[1].write_bytes, disk.write_bytes)}
        per_nic = {}
        for name, c in nics.items():
            p = prev[2].get(name)
            if p is not None:
                per_nic[name] = {"rx_bytes_s": rate(p[0], c[0]), "tx_bytes_s": rate(p[1], c[1])}
        net = {
            "rx_bytes_s": round(sum(v["rx_bytes_s"] for v in per_nic.values()), 1),
            "tx_bytes_s": round(sum(v["tx_bytes_s"] for v in per_nic.values()), 1),
            "per_nic": per_nic,
        }
        return {"disk_io": disk_io, "net": net}
