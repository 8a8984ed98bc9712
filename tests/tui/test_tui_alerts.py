"""Alert rules (tui/alerts.py) and their configuration (client.toml [alerts])."""

from __future__ import annotations

import pytest

from tests.helpers.tui_fakes import guard_frame
from tui.alerts import AlertRules, evaluate
from tui.config import load_alert_rules


def snap(temp=50.0, slowdown=None, mem_pct=40.0, containers=(), unified=False, gpu_used=None, gpu_total=None):
    return {
        "gpus": [
            {
                "index": 0,
                "status": "ok",
                "temperature_c": temp,
                "temperature_slowdown_c": slowdown,
                "memory": {"unified": unified, "used_bytes": gpu_used, "total_bytes": gpu_total},
            }
        ],
        "gpu_status": {"state": "ok", "message": ""},
        "host": {"memory": {"percent": mem_pct}, "swap": {"total_bytes": 0, "percent": 0.0}},
        "containers": list(containers),
    }


def keys(alerts):
    return {(a.key, a.severity) for a in alerts}


def test_gpu_temperature_thresholds_and_slowdown():
    rules = AlertRules(gpu_temp_c=80, gpu_temp_critical_c=90)
    assert evaluate(snap(temp=79), rules) == []
    assert keys(evaluate(snap(temp=80), rules)) == {("gpu0.temp", "warning")}
    assert keys(evaluate(snap(temp=91), rules)) == {("gpu0.temp", "critical")}
    assert keys(evaluate(snap(temp=75, slowdown=75), rules)) == {("gpu0.temp", "critical")}
    assert evaluate(snap(temp=None), rules) == []  # n/a never alerts as if it were 0 or hot


def test_memory_pressure_names_unified_memory():
    rules = AlertRules(memory_percent=85)
    (alert,) = evaluate(snap(mem_pct=90, unified=True), rules)
    assert alert.key == "host.mem" and "unified" in alert.message
    assert keys(evaluate(snap(gpu_used=95, gpu_total=100), rules)) == {("gpu0.mem", "warning")}


def test_exited_model_container_alerts_only_when_enabled():
    exited = {"name": "vllm-1", "model": "vllm", "state": "exited", "status": "Exited (1) 2 minutes ago"}
    plain = {"name": "web", "model": None, "state": "exited", "status": "Exited (0)"}
    assert keys(evaluate(snap(containers=[exited, plain]), AlertRules())) == {("model.vllm-1", "critical")}
    assert evaluate(snap(containers=[exited]), AlertRules(model_exited=False)) == []


def test_rules_load_from_client_toml(tmp_path):
    path = tmp_path / "client.toml"
    assert load_alert_rules(path) == AlertRules()
    path.write_text("[alerts]\ngpu_temp_c = 70\nmodel_exited = false\n")
    assert load_alert_rules(path) == AlertRules(gpu_temp_c=70.0, model_exited=False)
    path.write_text("[alerts]\ngpu_tmp = 70\n")
    with pytest.raises(ValueError, match="unknown alert setting"):
        load_alert_rules(path)


def test_a_lost_gpu_alerts_once():
    s = snap()
    s["gpus"].append({"index": 1, "status": "error", "error": "GPU is lost"})
    s["gpu_status"] = {"state": "degraded", "message": "GPU 1: GPU is lost"}
    assert keys(evaluate(s, AlertRules())) == {("gpu1.error", "critical")}
    s["gpus"] = []
    s["gpu_status"] = {"state": "unavailable", "message": "driver not found"}
    assert keys(evaluate(s, AlertRules())) == {("gpu.status", "warning")}


def test_guard_actions_are_alerts_for_ten_minutes_newest_first():
    from tui.alerts import guard_alerts

    now = 1_790_000_000.0
    events = [guard_frame(now - 700), guard_frame(now - 60, "warned", "warning: memory for models -1.00 GiB"), guard_frame(now - 5)]
    alerts = guard_alerts(events, now)
    assert [a.severity for a in alerts] == ["critical", "warning"]  # the 700 s old one has aged out
    assert "memory guard" in alerts[0].message and "stopped sparkdeck-vllm" in alerts[0].message
    assert len(guard_alerts([guard_frame(now - i) for i in range(10)], now)) == 3
    assert guard_alerts([{"type": "guard", "ts": "junk"}], now) == []
