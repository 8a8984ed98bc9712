"""The pure parts of incidents: compact samples, figures, the likely-cause rule, thinning, the
kept list (bounded, 0600, survives a reload), and the history store's WAL fsync."""

from __future__ import annotations

import asyncio
import json
import stat
from typing import Any

from agent.history.store import HistoryStore
from agent.incidents import records
from agent.incidents.store import IncidentLog, RunMarker
from agent.protocol import Incident

GiB = 1024**3
RESERVE = 8 * GiB


def frame(
    ts: float,
    *,
    available: int | None = 40 * GiB,
    models: int | None = None,
    pressure=None,
    gpu_c: float = 60.0,
    slowdown: float | None = None,
    reasons=(),
    sensors=(),
    containers=(),
) -> dict:
    memory = {"total_bytes": 128 * GiB, "used_bytes": 128 * GiB - (available or 0), "percent": 50.0}
    if available is not None:
        memory["available_bytes"] = available
    if models is not None:
        memory["models_available_bytes"] = models
    if pressure is not None:
        memory["pressure"] = pressure
    return {
        "type": "snapshot",
        "seq": int(ts),
        "ts": ts,
        "host": {"memory": memory, "temperatures": [{"chip": c, "label": "", "current_c": t} for c, t in sensors]},
        "gpus": [
            {
                "index": 0,
                "status": "ok",
                "utilization_gpu_percent": 90.0,
                "temperature_c": gpu_c,
                "temperature_slowdown_c": slowdown,
                "power_w": 80.0,
                "throttle_reasons": list(reasons),
            }
        ],
        "containers": list(containers),
    }


def build(frames: list[dict]) -> dict:
    inc = records.build(
        incident_id=1,
        kind="agent-crash",
        detected_at=2000.0,
        run={"started": 900.0, "agent_version": "0.1.0"},
        frames=frames,
        reserve_bytes=RESERVE,
        psi_full_limit=20.0,
        throttle_c=95.0,
        ignore_sensors=["nvme"],
    )
    Incident.model_validate(inc)  # the wire schema, extra fields forbidden
    return inc


def test_memory_exhausted_when_nothing_is_left_for_models():
    frames = [frame(1000.0 + i, available=(20 - 3 * i) * GiB) for i in range(6)]  # 20 GiB down to 5 GiB < reserve
    inc = build(frames)
    assert inc["cause"] == "memory" and inc["cause_text"].startswith("memory exhausted: 5.0 GiB available")
    assert inc["figures"]["min_available_bytes"] == 5 * GiB
    assert inc["figures"]["min_models_available_bytes"] == 5 * GiB - RESERVE  # computed: the frames predate the field


def test_memory_exhausted_by_pressure_alone_and_wt_ia_fields_are_read():
    frames = [frame(1000.0 + i, available=30 * GiB, models=22 * GiB, pressure={"some_avg10": 40.0, "full_avg10": 5.0 + 5 * i}) for i in range(4)]
    inc = build(frames)
    assert inc["cause"] == "memory" and "pressure full 20 %" in inc["cause_text"]
    s = inc["samples"][-1]
    assert s["models_available_bytes"] == 22 * GiB and s["psi_some_avg10"] == 40.0 and s["psi_full_avg10"] == 20.0
    assert inc["figures"]["max_psi_full_avg10"] == 20.0 and inc["figures"]["max_psi_some_avg10"] == 40.0


def test_pressure_below_the_limit_and_memory_left_is_not_memory():
    inc = build([frame(1000.0, pressure={"some_avg10": 90.0, "full_avg10": 19.9})])
    assert inc["cause"] == "unknown"


def test_over_temperature_by_reading_against_the_gpu_slowdown_threshold():
    inc = build([frame(1000.0, gpu_c=70.0, slowdown=87.0), frame(1001.0, gpu_c=88.0, slowdown=87.0)])
    assert inc["cause"] == "temperature" and inc["cause_text"] == "over temperature: 88 °C (limit 87 °C)"
    assert inc["figures"]["temperature_limit_c"] == 87.0


def test_over_temperature_by_thermal_throttle_or_a_hot_sensor_and_ignored_sensors_do_not_count():
    inc = build([frame(1000.0, reasons=["gpu_idle"]), frame(1001.0, reasons=["hw_thermal_slowdown", "sw_power_cap"])])
    assert inc["cause"] == "temperature" and "hw_thermal_slowdown" in inc["cause_text"]
    assert inc["figures"]["throttle_reasons"] == ["hw_thermal_slowdown", "sw_power_cap"]  # gpu_idle is not trouble
    hot = build([frame(1000.0, sensors=[("acpitz", 97.0)])])
    assert hot["cause"] == "temperature" and hot["figures"]["max_temperature_c"] == 97.0
    nvme = build([frame(1000.0, sensors=[("nvme", 99.0)])])
    assert nvme["cause"] == "unknown" and nvme["figures"]["max_temperature_c"] == 60.0


def test_memory_wins_over_temperature_and_no_samples_is_unknown():
    both = build([frame(1000.0, available=2 * GiB, gpu_c=99.0)])
    assert both["cause"] == "memory"
    empty = build([])
    assert empty["cause"] == "unknown" and "no samples" in empty["cause_text"]
    assert empty["last_sample_ts"] is None and empty["samples"] == [] and empty["figures"]["min_available_bytes"] is None


def test_running_containers_come_from_the_last_frame():
    c = {"id": "abc", "name": "vllm", "image": "img", "model": "vllm", "memory_bytes": 5, "gpu_memory_bytes": 7, "state": "running", "cpu_percent": 1.0}
    inc = build([frame(1000.0), frame(1001.0, containers=[c, {**c, "id": "def", "name": "old", "state": "exited"}])])
    assert inc["containers"] == [{"id": "abc", "name": "vllm", "image": "img", "model": "vllm", "memory_bytes": 5, "gpu_memory_bytes": 7}]


def test_thinning_spreads_evenly_and_keeps_the_last_sample():
    samples = [{"ts": float(i)} for i in range(1200)]  # 120 s at 10 Hz
    kept = records.thin(samples)
    assert len(kept) == records.MAX_SAMPLES and kept[-1]["ts"] == 1199.0 and kept[0]["ts"] <= 5.0
    assert [s["ts"] for s in kept] == sorted(s["ts"] for s in kept)
    assert records.thin(samples[:10]) == samples[:10]


def test_the_kept_list_is_bounded_private_and_survives_a_reload(tmp_path):
    path = tmp_path / "incidents.json"
    log = IncidentLog(path, keep=3)
    for _ in range(5):
        log.add(build([frame(1000.0)]) | {"id": log.next_id()})
    assert [i["id"] for i in log.items] == [3, 4, 5]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = IncidentLog(path, keep=3)
    assert [i["id"] for i in again.newest_first()] == [5, 4, 3] and again.next_id() == 6
    # a damaged entry (or file) is dropped, never served
    data = json.loads(path.read_text())
    data["incidents"][0]["surprise"] = 1
    path.write_text(json.dumps(data))
    assert [i["id"] for i in IncidentLog(path).items] == [4, 5]
    path.write_text("{not json")
    assert IncidentLog(path).items == []


def test_run_marker_round_trip_and_a_damaged_marker_is_no_incident(tmp_path):
    marker = RunMarker(tmp_path / "run.json")
    assert marker.previous() is None
    marker.write({"state": "running", "started": 1.0})
    assert marker.previous() == {"state": "running", "started": 1.0}
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o600
    (tmp_path / "run.json").write_text("garbage")
    assert marker.previous() is None


def test_history_fsyncs_its_wal_at_most_once_per_interval(tmp_path):
    async def main() -> tuple[int, list]:
        store = HistoryStore(tmp_path / "h.sqlite3", fsync_every_s=3600)
        for i in range(1, 6):
            await store.append(i, 1000.0 + i, b"x", {"cpu.percent": 1.0})
            store.sync_soon()
        rows = await store.run_frames(1002.0, 1.5)
        store.close()  # waits for queued work
        return store.fsyncs, rows

    fsyncs, rows = asyncio.run(main())
    assert fsyncs == 1  # the first frame's, then none within the hour
    assert [r[0] for r in rows] == [4, 5]  # 1.5 s before the newest, never before since_ts


def test_guard_actions_of_the_run_come_from_the_audit_log():
    audit: list[dict[str, Any]] = [
        {"time": 850.0, "token": "memory-guard", "action": "stop", "target": "older-run", "result": "ok"},  # before the run
        {"time": 950.0, "token": "laptop", "action": "stop", "target": "by-hand", "result": "ok"},  # not the guard
        {"time": 990.0, "token": "memory-guard", "action": "stop", "target": "vllm", "result": "ok", "detail": "models_available -1.2 GiB"},
        {"time": 1009.0, "actor": "memory-guard", "action": "kill", "target": "sglang", "result": "error"},  # just after the last sample
        {"time": "bad"},
    ]
    inc = records.build(
        incident_id=1,
        kind="agent-crash",
        detected_at=2000.0,
        run={"started": 900.0},
        frames=[frame(1000.0)],
        reserve_bytes=RESERVE,
        psi_full_limit=20.0,
        throttle_c=95.0,
        audit=audit,
    )
    Incident.model_validate(inc)
    assert [(g["target"], g["detail"]) for g in inc["guard_actions"]] == [("vllm", "models_available -1.2 GiB"), ("sglang", None)]


def test_fsync_cadence_syncs_each_1hz_frame_despite_jitter(tmp_path):
    clock = {"t": 100.0}

    async def main(gaps: list[float]) -> int:
        store = HistoryStore(tmp_path / f"h{sum(gaps)}.sqlite3")  # the agent's default cadence
        store._clock = lambda: clock["t"]
        for i, gap in enumerate(gaps, 1):
            clock["t"] += gap
            await store.append(i, 1000.0 + i, b"x", {})
            store.sync_soon()
        store.close()
        return store.fsyncs

    assert asyncio.run(main([0.0, 0.98, 0.99, 0.97])) == 4  # 1 Hz, each a hair early: every frame
    assert asyncio.run(main([0.0, 0.5, 0.5, 0.5])) == 2  # 2 Hz: once a second
