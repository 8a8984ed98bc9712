"""The alert engine fed real frame shapes: metric rules fire and resolve, the guard and model_state
frames it taps become alerts, busy -> idle, incidents, and alerts surviving a restart in history."""

from __future__ import annotations

import asyncio
import json
import time

from agent.alerts.engine import AlertEngine
from agent.history.store import HistoryStore
from agent.protocol import AlertFrame, GuardEvent, ModelState, encode
from agent.settings import AgentSettings, AlertsSettings


def _engine(tmp_path, store=None, **alerts) -> tuple[AlertEngine, list[tuple[str, str | None]]]:
    sent: list[tuple[str, str | None]] = []
    settings = AgentSettings(state_dir=tmp_path, alerts=AlertsSettings.model_validate(alerts))

    def broadcast(text: str, replay: str | None = None) -> None:
        sent.append((text, replay))

    return AlertEngine(settings, broadcast=broadcast, hostname="spark", store=store), sent


def _frame(ts: float, temp: float | None = 50.0, util: float = 0.0, avail: int = 10) -> dict:
    return {
        "ts": ts,
        "gpus": [{"index": 0, "temperature_c": temp, "utilization_percent": util}],
        "host": {"memory": {"models_available_bytes": avail}},
        "containers": [],
        "containers_status": {"state": "disabled"},
    }


def _alerts(sent) -> list[AlertFrame]:
    return [AlertFrame.model_validate(json.loads(t)) for t, _ in sent]


def test_gpu_hot_fires_after_30_s_and_resolves(tmp_path):
    eng, sent = _engine(tmp_path)
    for t in range(0, 30):
        eng.note_frame(_frame(1000 + t, temp=95))
    assert sent == []  # 29 s at 95 °C: not yet
    eng.note_frame(_frame(1030, temp=95))
    eng.note_frame(_frame(1031, temp=96))
    eng.note_frame(_frame(1032, temp=70))
    got = _alerts(sent)
    assert [(a.rule, a.state) for a in got] == [("gpu-hot", "firing"), ("gpu-hot", "resolved")]
    assert got[0].id == got[1].id and got[0].value == 95 and got[0].threshold == 90 and got[1].resolved_at
    assert eng.listing(control=False)["firing"] == []


def test_memory_short_fires_at_once(tmp_path):
    eng, sent = _engine(tmp_path)
    eng.note_frame(_frame(1.0, avail=-1))
    assert [(a.rule, a.severity, a.subject) for a in _alerts(sent)] == [("memory-short", "critical", "host.memory.models_available_bytes")]


def test_guard_and_failed_model_frames_become_alerts(tmp_path):
    eng, sent = _engine(tmp_path)
    guard = {
        "type": "guard",
        "v": 1,
        "ts": 1.0,
        "action": "stop-newest-model",
        "cause": "memory",
        "result": "stopped",
        "message": "stopped vllm-x: memory for models -1 GiB",
        "available_bytes": 1,
        "reserve_bytes": 2,
        "models_available_bytes": -1,
        "full_avg10": None,
        "container": {"id": "abc", "name": "vllm-x", "model": "vllm", "memory_bytes": 5, "gpu_memory_bytes": None},
    }
    GuardEvent.model_validate(guard)
    eng.tap(encode(guard))
    failed = {
        "type": "model_state",
        "v": 1,
        "name": "vllm",
        "state": "failed",
        "message": "the container exited with code 1",
        "since": 1.0,
        "exit_code": 1,
        "log_tail": ["boom"],
    }
    ModelState.model_validate(failed)
    eng.tap(encode(failed))
    eng.tap(encode({"type": "model_state", "v": 1, "name": "vllm", "state": "ready", "message": "answering", "since": 2.0}))
    eng.tap(encode({"type": "pull_progress", "v": 1, "model": "vllm", "image": "x", "status": "failed", "current_bytes": 1, "total_bytes": 2}))
    got = _alerts(sent)
    assert [(a.rule, a.state, a.subject) for a in got] == [("memory-guard", "event", "vllm-x"), ("model-failed", "event", "vllm")]
    assert got[1].details.log_tail == ["boom"]
    assert "boom" not in sent[1][1]  # a read-token client gets the alert without the log lines


def test_busy_then_idle_is_job_finished(tmp_path):
    eng, sent = _engine(tmp_path)
    t = 0.0
    for _ in range(30):
        eng.note_frame(_frame(t, util=90))
        t += 1
    for _ in range(700):
        eng.note_frame(_frame(t, util=0))
        t += 1
    assert sent == []  # 30 s of work is a blip, not a job
    for _ in range(70):
        eng.note_frame(_frame(t, util=90))
        t += 1
    for _ in range(601):
        eng.note_frame(_frame(t, util=1))
        t += 1
    got = _alerts(sent)
    assert [(a.rule, a.state, a.severity) for a in got] == [("job-finished", "event", "info")]
    assert "finished?" in got[0].message


def test_incident_at_start_is_an_alert(tmp_path):
    eng, sent = _engine(tmp_path)
    eng.incident({"id": 4, "kind": "host-reboot", "cause_text": "memory exhausted: 0 B left"})
    eng.incident(None)
    (a,) = _alerts(sent)
    assert a.rule == "incident" and a.details.incident_id == 4 and "memory exhausted" in a.message


def test_alerts_survive_a_restart_and_stay_bounded(tmp_path):
    async def run() -> None:
        store = HistoryStore(tmp_path / "history.sqlite3")
        eng, _ = _engine(tmp_path, store=store, keep=10)
        for i in range(15):
            eng.event("incident", "agent-crash", f"n{i}")
        await eng.start()
        store.close()
        store = HistoryStore(tmp_path / "history.sqlite3")
        again, _ = _engine(tmp_path, store=store, keep=10)
        await again.start()
        recent = again.listing(control=True)["recent"]
        assert [a["message"] for a in recent] == [f"n{i}" for i in range(14, 4, -1)]  # newest first, 10 kept
        assert again.next_id == 16
        store.close()

    asyncio.run(run())


def test_morning_summary(tmp_path):
    from agent.alerts.summary import next_at

    now = time.mktime((2026, 3, 10, 6, 0, 0, 0, 0, -1))
    assert time.localtime(next_at("07:30", now))[3:5] == (7, 30) and next_at("07:30", now) - now == 5400
    assert next_at("05:00", now) - now == 23 * 3600  # tomorrow
    rules = [{"name": "morning", "event": "summary", "at": "07:30", "severity": "info"}]
    eng, sent = _engine(tmp_path, rule=rules)
    eng.incidents_source = lambda: [{"id": 1, "detected_at": eng.started}, {"id": 0, "detected_at": eng.started - 86400}]
    for k, e in enumerate((1000.0, 1360.0, 1000.0, 1720.0)):  # a counter reset (1360 -> 1000) is skipped
        eng.note_frame({**_frame(float(k)), "gpus": [{"index": 0, "temperature_c": 50, "utilization_percent": 0, "energy_j": e}]})
    eng.event("container_exit", "train", "train exited with code 0 after 2 h 0 min", details={"container": "train", "exit_code": 0, "run_s": 7200.0})
    eng.summary()
    a = _alerts(sent)[-1]
    s = a.details.summary
    assert a.rule == "morning" and a.state == "event"
    assert s["energy_j"] == 1080.0 and s["incidents"] == 1 and s["ended"] == [{"name": "train", "exit_code": 0, "run_s": 7200.0}]
    assert "train (exit 0)" in a.message and "incidents: 1" in a.message and "kWh" in a.message
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o600
    eng.summary()  # the next one starts where this one ended
    s2 = _alerts(sent)[-1].details.summary
    assert s2["ended"] == [] and s2["energy_j"] == 0.0 and s2["since"] >= s["until"]
