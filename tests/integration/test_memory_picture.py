"""The memory picture: meminfo and PSI arithmetic, then the real agent's snapshot, /metrics and history."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.collectors.host import HostCollector
from agent.collectors.memory import GIB, gpu_process_bytes, models_available, parse_pressure, picture, read_memory, reclaimable
from agent.protocol import Snapshot

# a Spark-like meminfo: 128 GB, 8 GiB of tmpfs (in Cached, but not reclaimable without swap)
MEMINFO = """MemTotal:       127535672 kB
MemFree:        20000000 kB
MemAvailable:   60000000 kB
Buffers:          100000 kB
Cached:         48000000 kB
SwapCached:            0 kB
Active(file):   25000000 kB
Inactive(file): 14600000 kB
Unevictable:       10000 kB
Shmem:           8388608 kB
SReclaimable:    1000000 kB
SUnreclaim:       500000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
"""
PSI = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=4.25 avg60=1.00 avg300=0.20 total=45\n"


def _proc(tmp_path: Path, meminfo: str = MEMINFO, psi: str | None = PSI) -> Path:
    proc = tmp_path / "proc"
    (proc / "pressure").mkdir(parents=True)
    (proc / "meminfo").write_text(meminfo)
    if psi is not None:
        (proc / "pressure" / "memory").write_text(psi)
    return proc


def test_reclaimable_is_the_file_lru_plus_reclaimable_slab_not_shmem(tmp_path) -> None:
    mem = read_memory(str(_proc(tmp_path)), reserve=8 * GIB)
    assert mem is not None
    assert mem["reclaimable_bytes"] == (25000000 + 14600000 + 1000000) * 1024  # not Cached (48 GB) + SReclaimable
    assert mem["shmem_bytes"] == 8 * GIB and mem["free_bytes"] == 20000000 * 1024
    assert mem["available_bytes"] == 60000000 * 1024 and mem["used_bytes"] == (127535672 - 60000000) * 1024
    assert mem["reserve_bytes"] == 8 * GIB and mem["models_available_bytes"] == 60000000 * 1024 - 8 * GIB
    assert mem["pressure"] == {"some_avg10": 12.5, "full_avg10": 4.25}
    # a kernel without the LRU fields: Cached less Shmem stands in for them
    assert reclaimable({"Cached": 10 * GIB, "Shmem": 3 * GIB, "SReclaimable": GIB}) == 8 * GIB
    assert reclaimable({"MemTotal": 1}) is None


def test_models_available_may_be_negative_and_psi_may_be_missing(tmp_path) -> None:
    assert models_available(3 * GIB, 8 * GIB) == -5 * GIB
    proc = _proc(tmp_path, "MemTotal: 1000 kB\nMemAvailable: 250 kB\n", psi=None)
    mem = read_memory(str(proc), reserve=1024 * 1024)
    assert mem is not None and mem["pressure"] is None and mem["models_available_bytes"] == 256000 - 1024 * 1024
    assert parse_pressure(b"some avg10=1.00 avg60=0 avg300=0 total=0\n") is None  # no full line: not trusted
    assert parse_pressure(b"some avg10=x avg60=0\nfull avg10=1 avg60=0\n") is None
    assert picture({"MemTotal": 1}, None, 0) is None


def test_gpu_process_bytes_only_where_memory_is_unified() -> None:
    unified = {"status": "ok", "memory": {"unified": True}, "processes": [{"pid": 1, "used_memory_bytes": 5 * GIB}, {"pid": 2, "used_memory_bytes": None}]}
    discrete = {"status": "ok", "memory": {"unified": False}, "processes": [{"pid": 3, "used_memory_bytes": 7 * GIB}]}
    assert gpu_process_bytes([unified]) == 5 * GIB
    assert gpu_process_bytes([discrete]) is None
    assert gpu_process_bytes([{**unified, "processes": None}]) is None  # processes unreadable: unknown, not 0
    assert gpu_process_bytes([]) is None


def test_host_collector_carries_the_reserve(tmp_path) -> None:
    c = HostCollector(proc_root=str(_proc(tmp_path)), sys_root=str(tmp_path / "sys"), reserve_bytes=2 * GIB)
    mem = c.collect()["memory"]
    assert mem["models_available_bytes"] == mem["available_bytes"] - 2 * GIB and mem["pressure"]["full_avg10"] == 4.25


def _snapshot(agent) -> dict:
    r = httpx.get(agent.url + "/api/v1/snapshot", headers=agent.headers(agent.read_token))
    assert r.status_code == 200
    return r.json()


def test_real_agent_reports_the_picture_in_frames_metrics_and_history(start_agent) -> None:
    procs = f"{1 << 22}:{3 * GIB},{1 << 22 | 1}:{GIB}"  # two fake GPU processes, 4 GiB in all
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", env={"SPARKDECK_MEMORY__RESERVE_GIB": "2.5", "SPARKDECK_SIMULATE_PROCESSES": procs})
    snap = _snapshot(agent)
    Snapshot.model_validate(snap)  # extra fields forbidden: the schema names every one
    mem = snap["host"]["memory"]
    real = read_memory()
    assert real is not None
    assert abs(mem["available_bytes"] - real["available_bytes"]) < 2 * GIB  # this machine's real MemAvailable
    assert mem["reserve_bytes"] == int(2.5 * GIB) and mem["models_available_bytes"] == mem["available_bytes"] - int(2.5 * GIB)
    assert mem["gpu_process_bytes"] == 4 * GIB
    assert 0 < mem["reclaimable_bytes"] < mem["total_bytes"] and mem["shmem_bytes"] >= 0
    if Path("/proc/pressure/memory").exists():
        assert set(mem["pressure"]) == {"some_avg10", "full_avg10"}

    r = httpx.get(agent.url + "/metrics", headers=agent.headers(agent.read_token))
    text = r.text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("available", "free", "reclaimable", "shmem", "gpu_process", "reserve", "models_available"):
        assert f"sparkdeck_memory_{name}_bytes" in fams, name
    assert fams["sparkdeck_memory_gpu_process_bytes"].samples[0].value == 4 * GIB
    assert fams["sparkdeck_memory_reserve_bytes"].samples[0].value == int(2.5 * GIB)
    if Path("/proc/pressure/memory").exists():
        assert 0 <= fams["sparkdeck_memory_pressure_full_ratio"].samples[0].value <= 1

    time.sleep(1.0)
    series = "memory.available_bytes,memory.models_available_bytes,memory.psi_full_avg10,memory.gpu_process_bytes,memory.reclaimable_bytes"
    r = httpx.get(agent.url + "/api/v1/history", params={"metrics": series, "from": time.time() - 60, "step": 1}, headers=agent.headers(agent.read_token))
    assert r.status_code == 200, r.text
    got = r.json()["series"]
    assert got["memory.gpu_process_bytes"]["max"][-1] == 4 * GIB
    assert got["memory.models_available_bytes"]["avg"][-1] == pytest.approx(got["memory.available_bytes"]["avg"][-1] - 2.5 * GIB, abs=1)
    if Path("/proc/pressure/memory").exists():
        assert len(got["memory.psi_full_avg10"]["avg"]) >= 1


def test_discrete_gpu_has_no_gpu_process_figure(start_agent) -> None:
    agent = start_agent("--simulate", "h100")
    mem = _snapshot(agent)["host"]["memory"]
    assert mem["gpu_process_bytes"] is None and mem["reserve_bytes"] == 8 * GIB  # the default reserve
    assert "sparkdeck_memory_gpu_process_bytes" not in httpx.get(agent.url + "/metrics", headers=agent.headers(agent.read_token)).text
