"""GPU telemetry through NVML, one field at a time.

Each field is read on its own: a field that fails gives ``null`` plus its name in
the device's ``unsupported`` list and a reason in ``na_reasons``; it never hides
the other fields (nvitop's rule). Errors that mean the GPU or driver is gone mark
that GPU in error, leave the others flowing, and schedule an NVML re-init with
exponential backoff. All calls here block: the sampler runs ``collect`` in a
worker thread and time-boxes it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml
from pynvml import NVMLError

from agent.collectors.host import read_meminfo
from agent.collectors.nvml import FATAL_CODES, INIT_FIXES, error_text

log = logging.getLogger("sparkdeck.gpu")

THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

# GPUs that share system RAM with the CPU; NVML answers NOT_SUPPORTED for their memory.
UNIFIED_MEMORY_NAMES = re.compile(r"GB10|Thor|Orin|Xavier|Tegra", re.IGNORECASE)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0


class GpuLost(Exception):
    """A fatal NVML error on one device; carries the reason."""


@dataclass
class _Device:
    index: int
    handle: Any = None
    name: str | None = None
    uuid: str | None = None
    slowdown_c: float | None = None
    slowdown_reason: str | None = None
    error: str | None = None


@dataclass
class _Reader:
    """Collects n/a fields for one device while its fields are read."""

    unsupported: list[str] = field(default_factory=list)
    na_reasons: dict[str, str] = field(default_factory=dict)

    def read(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except NVMLError as exc:
            if getattr(exc, "value", None) in FATAL_CODES:
                raise GpuLost(error_text(exc)) from None
            self.na(name, error_text(exc))
        except Exception as exc:  # a broken binding must not take the sample down
            self.na(name, error_text(exc))
        return None

    def na(self, name: str, reason: str) -> None:
        self.unsupported.append(name)
        self.na_reasons[name] = reason


def _process_name(pid: int, proc_root: str) -> str | None:
    try:
        with open(f"{proc_root}/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or None
    except OSError:
        return None


class GpuCollector:
    def __init__(
        self,
        nvml: Any,
        *,
        simulated: bool = False,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.nvml = nvml
        self.simulated = simulated
        self.proc_root = proc_root
        self.clock = clock
        self._ready = False
        self._devices: list[_Device] = []
        self._init_error: tuple[str, str | None] | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self.driver_version: str | None = None
        self.nvml_version: str | None = None

    # -- lifecycle ----------------------------------------------------------------
    def _init(self) -> None:
        if self._ready:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self._ready = False
        try:
            self.nvml.nvmlInit()
            count = self.nvml.nvmlDeviceGetCount()
        except NVMLError as exc:
            code = getattr(exc, "value", None)
            known = INIT_FIXES.get(code) if isinstance(code, int) else None
            reason, fix = known or (f"NVML failed to start: {error_text(exc)}", None)
            self._init_error = (reason, fix)
            self._devices = []
            self._schedule_retry()
            log.warning("NVML unavailable: %s", reason)
            return
        except Exception as exc:  # e.g. a missing symbol in an old driver
            self._init_error = (f"NVML failed to start: {error_text(exc)}", None)
            self._devices = []
            self._schedule_retry()
            return
        self._ready = True
        self._init_error = None
        self.driver_version = self._safe(self.nvml.nvmlSystemGetDriverVersion)
        self.nvml_version = self._safe(self.nvml.nvmlSystemGetNVMLVersion)
        old = {d.index: d for d in self._devices}
        self._devices = []
        for i in range(count):
            dev = _Device(index=i)
            prev = old.get(i)
            if prev:  # keep names of a GPU that stays lost, so the UI can say which
                dev.name, dev.uuid = prev.name, prev.uuid
            try:
                dev.handle = self.nvml.nvmlDeviceGetHandleByIndex(i)
                dev.name = self._safe(self.nvml.nvmlDeviceGetName, dev.handle) or dev.name
                dev.uuid = self._safe(self.nvml.nvmlDeviceGetUUID, dev.handle) or dev.uuid
                r = _Reader()
                dev.slowdown_c = r.read(
                    "temperature_slowdown_c",
                    self.nvml.nvmlDeviceGetTemperatureThreshold,
                    dev.handle,
                    pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
                )
                dev.slowdown_reason = r.na_reasons.get("temperature_slowdown_c")
            except (NVMLError, GpuLost) as exc:
                dev.error = error_text(exc) if isinstance(exc, NVMLError) else str(exc)
            self._devices.append(dev)
        if any(d.error for d in self._devices):
            self._schedule_retry()
        else:
            self._backoff = BACKOFF_MIN_S
        log.info("NVML ready: driver %s, %d GPU(s)", self.driver_version, count)

    def _schedule_retry(self) -> None:
        self._retry_at = self.clock() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            value = fn(*args)
        except Exception:
            return None
        return value.decode() if isinstance(value, bytes) else value

    def close(self) -> None:
        if self._ready:
            self._safe(self.nvml.nvmlShutdown)
            self._ready = False

    # -- sampling -----------------------------------------------------------------
    def collect(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Return (gpus, gpu_status) for one snapshot."""
        needs_init = not self._ready or any(d.error for d in self._devices)
        if needs_init and self.clock() >= self._retry_at:
            self._init()
        if self._init_error is not None:
            reason, fix = self._init_error
            return [], self._status("unavailable", reason, fix)
        gpus = []
        for dev in self._devices:
            if dev.error is None:
                try:
                    gpus.append(self._read_device(dev))
                    continue
                except GpuLost as exc:
                    dev.error = str(exc)
                    log.warning("GPU %d (%s) in error: %s; re-initialising NVML with backoff", dev.index, dev.uuid, exc)
                    self._schedule_retry()
            gpus.append(self._error_entry(dev))
        bad = [g for g in gpus if g["status"] == "error"]
        if bad:
            names = ", ".join(f"GPU {g['index']}: {g['error']}" for g in bad)
            return gpus, self._status("degraded", names, "check `nvidia-smi` and `dmesg`; the agent retries by itself")
        return gpus, self._status("ok", f"{len(gpus)} GPU(s)" if gpus else "NVML found no GPU")

    def _status(self, state: str, message: str, fix: str | None = None) -> dict[str, Any]:
        return {
            "state": state,
            "message": message,
            "fix": fix,
            "driver_version": self.driver_version,
            "nvml_version": self.nvml_version,
            "simulated": self.simulated,
        }

    @staticmethod
    def _error_entry(dev: _Device) -> dict[str, Any]:
        return {"index": dev.index, "name": dev.name, "uuid": dev.uuid, "status": "error", "error": dev.error}

    def _read_device(self, dev: _Device) -> dict[str, Any]:
        n, h, r = self.nvml, dev.handle, _Reader()
        util = r.read("utilization", n.nvmlDeviceGetUtilizationRates, h)
        if util is None:
            r.unsupported.remove("utilization")
            reason = r.na_reasons.pop("utilization")
            r.na("utilization_gpu_percent", reason)
            r.na("utilization_memory_percent", reason)
        memory = self._memory(r, h, dev.name or "")
        power_mw = r.read("power_w", n.nvmlDeviceGetPowerUsage, h)
        limit_mw = r.read("power_limit_w", n.nvmlDeviceGetEnforcedPowerLimit, h)
        energy_mj = r.read("energy_j", n.nvmlDeviceGetTotalEnergyConsumption, h)
        temp = r.read("temperature_c", n.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
        sm = r.read("sm_clock_mhz", n.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM)
        mem_clk = r.read("mem_clock_mhz", n.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_MEM)
        fan = r.read("fan_percent", n.nvmlDeviceGetFanSpeed, h)
        pstate = r.read("pstate", n.nvmlDeviceGetPerformanceState, h)
        reasons_fn = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
        reasons = r.read("throttle_reasons", reasons_fn, h)
        procs = r.read("processes", n.nvmlDeviceGetComputeRunningProcesses, h)
        if dev.slowdown_c is None and dev.slowdown_reason:
            r.na("temperature_slowdown_c", dev.slowdown_reason)
        return {
            "index": dev.index,
            "name": dev.name,
            "uuid": dev.uuid,
            "status": "ok",
            "error": None,
            "utilization_gpu_percent": float(util.gpu) if util is not None else None,
            "utilization_memory_percent": float(util.memory) if util is not None else None,
            "memory": memory,
            "temperature_c": float(temp) if temp is not None else None,
            "temperature_slowdown_c": float(dev.slowdown_c) if dev.slowdown_c is not None else None,
            "power_w": round(power_mw / 1000, 2) if power_mw is not None else None,
            "power_limit_w": round(limit_mw / 1000, 2) if limit_mw is not None else None,
            "energy_j": round(energy_mj / 1000, 1) if energy_mj is not None else None,
            "sm_clock_mhz": int(sm) if sm is not None else None,
            "mem_clock_mhz": int(mem_clk) if mem_clk is not None else None,
            "fan_percent": float(fan) if fan is not None else None,
            "pstate": f"P{pstate}" if pstate is not None else None,
            "throttle_reasons": [v for k, v in THROTTLE_REASONS.items() if reasons & k] if reasons is not None else None,
            "processes": [
                {
                    "pid": int(p.pid),
                    "name": _process_name(int(p.pid), self.proc_root),
                    "used_memory_bytes": int(p.usedGpuMemory) if p.usedGpuMemory is not None else None,
                }
                for p in procs
            ]
            if procs is not None
            else None,
            "unsupported": r.unsupported,
            "na_reasons": r.na_reasons,
        }

    def _memory(self, r: _Reader, h: Any, name: str) -> dict[str, Any] | None:
        try:
            info = self.nvml.nvmlDeviceGetMemoryInfo(h)
            return {"total_bytes": int(info.total), "used_bytes": int(info.used), "unified": False, "source": "nvml"}
        except NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in FATAL_CODES:
                raise GpuLost(error_text(exc)) from None
            if code != pynvml.NVML_ERROR_NOT_SUPPORTED or not UNIFIED_MEMORY_NAMES.search(name):
                r.na("memory", error_text(exc))
                return None
        # NOT_SUPPORTED: the GPU shares system RAM (GB10). Real use is MemTotal - MemAvailable.
        mem = read_meminfo(self.proc_root)
        if mem is None:
            r.na("memory", "NVML: Not Supported; /proc/meminfo unreadable")
            return None
        total, available = mem
        return {"total_bytes": total, "used_bytes": total - available, "unified": True, "source": "meminfo"}
