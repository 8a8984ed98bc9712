"""GPU collector against the fake NVML scenarios (real pynvml exception classes and codes)."""

from __future__ import annotations

import pynvml
import pytest

from agent.collectors.gpu import BACKOFF_MAX_S, GpuCollector
from agent.collectors.nvml_fake import FakeNvml
from agent.protocol import Gpu, GpuStatus


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def meminfo(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       128000000 kB\nMemFree:         1000000 kB\nMemAvailable:    96000000 kB\n")
    return str(tmp_path)


def collect(nvml, proc_root="/proc", clock=None):
    c = GpuCollector(nvml, simulated=True, proc_root=proc_root, clock=clock or Clock())
    gpus, status = c.collect()
    for g in gpus:
        Gpu.model_validate(g)
    GpuStatus.model_validate(status)
    return c, gpus, status


def test_fake_raises_real_pynvml_classes_with_real_codes():
    nv = FakeNvml.scenario("gb10")
    nv.nvmlInit()
    h = nv.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported) as exc:
        nv.nvmlDeviceGetMemoryInfo(h)
    assert exc.value.value == pynvml.NVML_ERROR_NOT_SUPPORTED == 3
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nv.nvmlDeviceGetFanSpeed(h)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        FakeNvml.scenario("no-driver").nvmlInit()


def test_gb10_unified_memory_from_meminfo_and_fan_na(meminfo):
    _, gpus, status = collect(FakeNvml.scenario("gb10"), proc_root=meminfo)
    assert status["state"] == "ok" and status["simulated"] is True
    (g,) = gpus
    assert g["name"] == "NVIDIA GB10"
    assert g["memory"] == {"total_bytes": 128000000 * 1024, "used_bytes": (128000000 - 96000000) * 1024, "unified": True, "source": "meminfo"}
    assert g["fan_percent"] is None and "fan_percent" in g["unsupported"]
    assert g["na_reasons"]["fan_percent"] == "Not Supported"
    assert g["power_limit_w"] is None and "power_limit_w" in g["unsupported"]
    # the rest works and is not hidden by the unsupported fields
    for key in ("utilization_gpu_percent", "temperature_c", "power_w", "energy_j", "sm_clock_mhz", "mem_clock_mhz", "pstate"):
        assert g[key] is not None, key
    assert "memory" not in g["unsupported"]
    assert g["processes"] == []


def test_h100_every_field_reported():
    _, gpus, _ = collect(FakeNvml.scenario("h100"))
    (g,) = gpus
    assert g["memory"]["unified"] is False and g["memory"]["source"] == "nvml"
    assert g["memory"]["total_bytes"] == 80 * 1024**3
    assert g["power_limit_w"] == 700.0
    assert g["temperature_slowdown_c"] == 87.0
    assert g["unsupported"] == ["fan_percent"]  # SXM boards have no fan of their own


def test_h200x2_two_devices():
    _, gpus, status = collect(FakeNvml.scenario("h200x2"))
    assert [g["index"] for g in gpus] == [0, 1]
    assert status["message"] == "2 GPU(s)"


def test_no_driver_gives_empty_list_and_reason():
    c, gpus, status = collect(FakeNvml.scenario("no-driver"))
    assert gpus == []
    assert status["state"] == "unavailable"
    assert "libnvidia-ml" in status["message"] and status["fix"]


def test_no_driver_retries_with_backoff():
    clock = Clock()
    nv = FakeNvml.scenario("no-driver")
    c = GpuCollector(nv, clock=clock)
    c.collect()
    assert nv.init_calls == 1
    c.collect()
    assert nv.init_calls == 1  # not before the backoff elapsed
    clock.t += 1.01
    c.collect()
    assert nv.init_calls == 2
    nv.init_error = None  # the driver got installed
    clock.t += 2.01
    gpus, status = c.collect()
    assert status["state"] == "ok" and gpus == []


def test_every_field_unsupported_still_one_entry_with_nulls():
    _, gpus, status = collect(FakeNvml.scenario("unsupported"))
    (g,) = gpus
    assert status["state"] == "ok" and g["status"] == "ok"
    assert g["memory"] is None and "memory" in g["unsupported"]  # a discrete card: no unified fallback
    for key in ("utilization_gpu_percent", "temperature_c", "power_w", "sm_clock_mhz", "fan_percent", "pstate", "processes", "throttle_reasons"):
        assert g[key] is None and key in g["unsupported"], key


def test_gpu_lost_mid_run_marks_only_that_gpu_and_reinits_with_backoff():
    clock = Clock()
    nv = FakeNvml(FakeNvml.scenario("gpu-lost").gpus, lost_index=1, lost_after_s=5.0, recover_after_inits=3, clock=clock)
    c = GpuCollector(nv, clock=clock)
    gpus, status = c.collect()
    assert [g["status"] for g in gpus] == ["ok", "ok"]
    clock.t += 6  # GPU 1 falls off the bus
    gpus, status = c.collect()
    assert [g["status"] for g in gpus] == ["ok", "error"]
    assert gpus[1]["error"] == "GPU is lost" and gpus[1]["uuid"].endswith("1")
    assert gpus[0]["utilization_gpu_percent"] is not None
    assert status["state"] == "degraded" and "GPU 1" in status["message"]
    inits = nv.init_calls
    c.collect()
    assert nv.init_calls == inits  # backoff: no re-init on the very next sample
    delays = []
    for _ in range(3):
        before = nv.init_calls
        waited = 0.0
        while nv.init_calls == before:
            clock.t += 0.5
            waited += 0.5
            gpus, _ = c.collect()
        delays.append(waited)
    assert delays[0] < delays[1] < delays[2]  # exponential backoff
    assert nv.shutdown_calls >= 3  # each re-init shuts NVML down first
    # after enough re-inits the GPU is back
    for _ in range(400):
        clock.t += 1
        gpus, status = c.collect()
        if status["state"] == "ok":
            break
    assert [g["status"] for g in gpus] == ["ok", "ok"]


def test_backoff_is_capped():
    clock = Clock()
    nv = FakeNvml.scenario("no-driver")
    c = GpuCollector(nv, clock=clock)
    for _ in range(12):
        c.collect()
        clock.t += BACKOFF_MAX_S + 1
    assert c._backoff == BACKOFF_MAX_S


def test_processes_named_from_proc(tmp_path):
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "comm").write_text("vllm\n")
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable: 50 kB\n")
    nv = FakeNvml.scenario("gb10")
    nv.gpus[0].processes = [(4242, 3 * 1024**3), (4243, None)]
    _, gpus, _ = collect(nv, proc_root=str(tmp_path))
    assert gpus[0]["processes"] == [
        {"pid": 4242, "name": "vllm", "used_memory_bytes": 3 * 1024**3},
        {"pid": 4243, "name": None, "used_memory_bytes": None},
    ]


def test_non_nvml_exception_in_a_field_is_contained():
    nv = FakeNvml.scenario("h100")

    def broken(h):
        raise OSError("ctypes exploded")

    nv.nvmlDeviceGetPowerUsage = broken
    _, gpus, _ = collect(nv)
    assert gpus[0]["power_w"] is None and "ctypes exploded" in gpus[0]["na_reasons"]["power_w"]
    assert gpus[0]["temperature_c"] is not None
