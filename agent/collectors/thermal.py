"""Every /sys/class/thermal zone: its type, temperature and trip points.

hwmon shows the chips a driver registers; thermal zones are what the kernel itself
throttles and powers off by. On the DGX Spark the CPU side reaches 95 °C and the
board powers off near 105 °C while the GPU reads cooler, so the zones and their
``critical`` trips are the figures that say how close a machine is to shutting down.

Zones and their trip points are re-listed every ``RELIST_S`` (they are fixed per boot
but a driver may load later); temperatures are read every tick. A zone whose sensor
cannot be read (some ACPI zones answer EIO or ENODATA while asleep) is reported with
``temp_c`` null rather than dropped, so the list does not flicker.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from typing import Any

RELIST_S = 30.0
MAX_TRIPS = 16  # a zone with more trip points than this is a driver bug; keep the frame bounded


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(256).strip()
    except OSError:
        return None


def _millic(path: str) -> float | None:
    """A sysfs millidegree file as °C; None when unreadable or not a number."""
    text = _read(path)
    try:
        return round(int(text) / 1000, 1) if text is not None else None
    except ValueError:
        return None


def list_zones(sys_root: str = "/sys") -> list[dict[str, Any]]:
    """[{zone, type, path, trips}] for every thermal_zoneN, in numeric order."""
    zones = []
    paths = glob.glob(f"{sys_root}/class/thermal/thermal_zone*")
    for path in sorted(paths, key=lambda p: int(os.path.basename(p)[12:] or 0) if os.path.basename(p)[12:].isdigit() else 1 << 30):
        name = os.path.basename(path)
        trips = []
        for n in range(MAX_TRIPS):
            kind = _read(f"{path}/trip_point_{n}_type")
            if kind is None:
                break
            trips.append({"type": kind, "temp_c": _millic(f"{path}/trip_point_{n}_temp")})
        zones.append({"zone": name, "type": _read(f"{path}/type") or name, "path": path, "trips": trips})
    return zones


class ThermalZones:
    """Reads the zones' temperatures each call; re-lists the zones every RELIST_S."""

    def __init__(self, sys_root: str = "/sys", clock: Callable[[], float] = time.monotonic):
        self.sys_root = sys_root
        self.clock = clock
        self._listed_at = -RELIST_S
        self._zones: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        now = self.clock()
        if now - self._listed_at >= RELIST_S:
            self._zones, self._listed_at = list_zones(self.sys_root), now
        out = []
        for z in self._zones:
            temp = _millic(f"{z['path']}/temp")
            out.append({"zone": z["zone"], "type": z["type"], "temp_c": temp, "trips": z["trips"], "critical_margin_c": critical_margin(temp, z["trips"])})
        return out


def critical_margin(temp_c: float | None, trips: list[dict[str, Any]]) -> float | None:
    """°C left before the zone's lowest ``critical`` trip (the kernel powers off there); None without one.

    Alert rules compare a metric with a constant, so the distance is served ready-made: the
    built-in ``thermal-critical`` rule is ``critical_margin_c <= 5`` whatever each zone's trip is.
    """
    crit = [t["temp_c"] for t in trips if t.get("type") == "critical" and isinstance(t.get("temp_c"), (int, float))]
    if temp_c is None or not crit:
        return None
    return round(min(crit) - temp_c, 1)
