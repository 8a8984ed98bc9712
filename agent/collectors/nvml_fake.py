"""A fake NVML for machines without a GPU: tests, CI, and ``--simulate`` demos.

It mimics pynvml's module-level API at the same boundary the real library sits
at, and fails the way the real one does: by raising ``pynvml.NVMLError(code)``,
which pynvml maps to its real subclasses (NVMLError_NotSupported,
NVMLError_GpuIsLost, ...). Values follow a slow, smooth load wave so a demo looks
alive; ``clock`` can be pinned for deterministic tests.

Scenarios (``--simulate NAME``):
  gb10         DGX Spark: memory info NOT_SUPPORTED (unified), fan NOT_SUPPORTED,
               power limit NOT_SUPPORTED, everything else works.
  h100         one discrete H100 80GB-class card: every field works.
  h200x2       two H200-class cards.
  no-driver    nvmlInit fails with LIBRARY_NOT_FOUND.
  gpu-lost     two H100s; GPU 1 answers GPU_IS_LOST from ``lost_after_s`` seconds
               on, until NVML has been re-initialised ``recover_after_inits`` times.
  unsupported  one GPU on which every field is NOT_SUPPORTED.
  hang         gb10 whose temperature read blocks for ``hang_s`` seconds.

``SPARKDECK_SIMULATE_PROCESSES=pid:bytes,...`` makes the first GPU of any scenario
report those compute processes (to test per-container GPU memory end to end).
``SPARKDECK_SIMULATE_THROTTLE_FILE=PATH`` makes every fake GPU report exactly the throttle
reasons named in that file (e.g. ``hw_thermal_slowdown,sw_power_cap``; empty or missing: none),
read on each call, so a test can start and end a throttle event when it chooses.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml
from pynvml import NVMLError

GiB = 1024**3
# "pid:bytes,pid:bytes": compute processes the first fake GPU reports (tests map them to containers)
PROCESSES_ENV = "SPARKDECK_SIMULATE_PROCESSES"
THROTTLE_ENV = "SPARKDECK_SIMULATE_THROTTLE_FILE"


def scripted_reasons(path: str) -> int:
    """The NVML bit mask for the reason names in ``path`` (unknown names ignored)."""
    from agent.collectors.gpu import THROTTLE_REASONS

    bits = {name: bit for bit, name in THROTTLE_REASONS.items()}
    try:
        with open(path, encoding="utf-8") as f:
            names = f.read(4096).replace(",", " ").split()
    except OSError:
        return 0
    mask = 0
    for name in names:
        mask |= bits.get(name, 0)
    return mask


def parse_processes(text: str) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for item in text.split(","):
        pid, _, used = item.strip().partition(":")
        if pid:
            out.append((int(pid), int(used) if used else None))
    return out


@dataclass
class FakeGpu:
    name: str
    uuid: str
    memory_total: int | None  # None -> NOT_SUPPORTED (unified memory)
    power_limit_mw: int | None
    idle_w: float
    peak_w: float
    fan: bool
    slowdown_c: int | None
    mem_clock_mhz: int
    max_sm_mhz: int
    unsupported_all: bool = False
    processes: list[tuple[int, int | None]] = field(default_factory=list)


def _gb10() -> FakeGpu:
    return FakeGpu(
        name="NVIDIA GB10",
        uuid="GPU-5a1e7c2b-0b10-4f5e-9d1a-5a5a5a5a0b10",
        memory_total=None,
        power_limit_mw=None,
        idle_w=4.0,
        peak_w=95.0,
        fan=False,
        slowdown_c=None,
        mem_clock_mhz=4266,
        max_sm_mhz=2184,
    )


def _h100(i: int = 0, name: str = "NVIDIA H100 80GB HBM3", mem: int = 80 * GiB) -> FakeGpu:
    return FakeGpu(
        name=name,
        uuid=f"GPU-11000000-0000-4000-8000-00000000000{i}",
        memory_total=mem,
        power_limit_mw=700_000,
        idle_w=70.0,
        peak_w=680.0,
        fan=False,  # SXM boards have no fan of their own
        slowdown_c=87,
        mem_clock_mhz=2619,
        max_sm_mhz=1980,
    )


class FakeNvml:
    """pynvml's API over a list of FakeGpu, with scripted failures."""

    NVMLError = NVMLError

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        init_error: int | None = None,
        lost_index: int | None = None,
        lost_after_s: float = 0.0,
        recover_after_inits: int | None = None,
        hang_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        driver_version: str = "580.95.05",
    ):
        self.gpus = gpus
        self.init_error = init_error
        self.lost_index = lost_index
        self.lost_after_s = lost_after_s
        self.recover_after_inits = recover_after_inits
        self.hang_s = hang_s
        self.clock = clock
        self.driver_version = driver_version
        self.init_calls = 0
        self.shutdown_calls = 0
        self._initialised = False
        self._t0 = clock()

    # -- scenarios ---------------------------------------------------------------
    @classmethod
    def scenario(cls, name: str, **kw) -> FakeNvml:
        fake = cls._scenario(name, **kw)
        if fake.gpus and os.environ.get(PROCESSES_ENV):
            fake.gpus[0].processes = parse_processes(os.environ[PROCESSES_ENV])
        return fake

    @classmethod
    def _scenario(cls, name: str, **kw) -> FakeNvml:
        name = name.lower()
        if name == "gb10":
            return cls([_gb10()], **kw)
        if name == "h100":
            return cls([_h100()], **kw)
        if name == "h200x2":
            return cls([_h100(i, "NVIDIA H200", 141 * GiB) for i in range(2)], **kw)
        if name == "no-driver":
            return cls([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, **kw)
        if name == "gpu-lost":
            kw.setdefault("lost_after_s", 3.0)
            kw.setdefault("recover_after_inits", None)
            return cls([_h100(0), _h100(1)], lost_index=1, **kw)
        if name == "unsupported":
            g = _h100()
            g.unsupported_all = True
            return cls([g], **kw)
        if name == "hang":
            kw.setdefault("hang_s", 30.0)
            return cls([_gb10()], **kw)
        raise ValueError(f"unknown simulation scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")

    # -- library lifecycle ---------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        self._initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check_init()
        return "13." + self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._check_lost(index)
        return index

    # -- device fields ---------------------------------------------------------------
    def nvmlDeviceGetName(self, h: int) -> str:
        return self._dev(h, allow_unsupported=True).name

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self._dev(h, allow_unsupported=True).uuid

    def nvmlDeviceGetUtilizationRates(self, h: int):
        self._dev(h)
        return SimpleNamespace(gpu=round(self._load(h) * 100), memory=0 if self._is_gb10(h) else round(self._load(h) * 60))

    def nvmlDeviceGetMemoryInfo(self, h: int, version=None):
        g = self._dev(h)
        if g.memory_total is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        used = int(g.memory_total * (0.05 + 0.7 * self._load(h)))
        return SimpleNamespace(total=g.memory_total, used=used, free=g.memory_total - used)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        self._dev(h)
        if self.hang_s:
            time.sleep(self.hang_s)
        return round(36 + 44 * self._load(h))

    def nvmlDeviceGetTemperatureThreshold(self, h: int, threshold: int) -> int:
        g = self._dev(h)
        if g.slowdown_c is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.slowdown_c

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        g = self._dev(h)
        return int(1000 * (g.idle_w + (g.peak_w - g.idle_w) * self._load(h)))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        g = self._dev(h)
        if g.power_limit_mw is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        g = self._dev(h)
        elapsed = self.clock() - self._t0
        return int(1000 * (1_000_000 + elapsed * (g.idle_w + g.peak_w) / 2))

    def nvmlDeviceGetClockInfo(self, h: int, clock_type: int) -> int:
        g = self._dev(h)
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return g.mem_clock_mhz
        return int(g.max_sm_mhz * (0.5 + 0.5 * self._load(h)))

    def nvmlDeviceGetFanSpeed(self, h: int) -> int:
        g = self._dev(h)
        if not g.fan:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return round(30 + 60 * self._load(h))

    def nvmlDeviceGetPerformanceState(self, h: int) -> int:
        self._dev(h)
        return 0 if self._load(h) > 0.2 else 8

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        self._dev(h)
        if os.environ.get(THROTTLE_ENV):
            return scripted_reasons(os.environ[THROTTLE_ENV])
        if self._load(h) < 0.1:
            return pynvml.nvmlClocksEventReasonGpuIdle
        if self._load(h) > 0.9:
            return pynvml.nvmlClocksEventReasonSwPowerCap
        return 0

    def nvmlDeviceGetComputeRunningProcesses(self, h: int):
        g = self._dev(h)
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in g.processes]

    # -- helpers ---------------------------------------------------------------------
    def _check_init(self) -> None:
        if not self._initialised:
            raise NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _check_lost(self, index: int) -> None:
        if self.lost_index != index:
            return
        recovered = self.recover_after_inits is not None and self.init_calls > self.recover_after_inits
        if self.clock() - self._t0 >= self.lost_after_s and not recovered:
            raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    def _dev(self, h: int, allow_unsupported: bool = False) -> FakeGpu:
        self._check_init()
        self._check_lost(h)
        g = self.gpus[h]
        if g.unsupported_all and not allow_unsupported:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g

    def _is_gb10(self, h: int) -> bool:
        return self.gpus[h].memory_total is None

    def _load(self, h: int) -> float:
        """0..1: a two-minute wave, offset per GPU."""
        t = self.clock() - self._t0
        return 0.5 + 0.45 * math.sin(t * 2 * math.pi / 120 + h)


SCENARIOS = ("gb10", "h100", "h200x2", "no-driver", "gpu-lost", "unsupported", "hang")
