"""Pure pieces of the alert engine: metric paths, holding for for_s, the rule set, routing and limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.alerts.delivery import Delivery, render
from agent.alerts.rules import Holder, rule_set, values_at
from agent.settings import AlertRuleSettings, AlertsSettings, NotifySettings
from tui.alerts import agent_alerts
from tui.client import AgentClient


def test_values_at_walks_lists_and_skips_nulls():
    frame = {"gpus": [{"temperature_c": 50}, {"temperature_c": None}, {"temperature_c": 91.5}], "host": {"memory": {"models_available_bytes": -5}}}
    assert list(values_at(frame, "gpus.*.temperature_c")) == [("gpus.0.temperature_c", 50.0), ("gpus.2.temperature_c", 91.5)]
    assert list(values_at(frame, "host.memory.models_available_bytes")) == [("host.memory.models_available_bytes", -5.0)]
    assert list(values_at(frame, "host.thermal_zones.*.temp_c")) == []  # a field this frame lacks: nothing, no error
    assert list(values_at(frame, "gpus.1.temperature_c")) == []
    zones = {"host": {"thermal_zones": [{"zone": "thermal_zone3", "critical_margin_c": 4.0}, {"zone": "thermal_zone7", "critical_margin_c": None}]}}
    # a zone is named by its sysfs name, not its place in the list
    assert list(values_at(zones, "host.thermal_zones.*.critical_margin_c")) == [("host.thermal_zones.thermal_zone3.critical_margin_c", 4.0)]


def test_holder_waits_for_s():
    h = Holder()
    assert h.update("x", True, 0.0, 30) is None
    assert h.update("x", True, 29.0, 30) is None
    assert h.update("x", True, 30.0, 30) is True
    assert h.update("x", False, 31.0, 30) is False
    assert h.update("x", True, 32.0, 30) is None  # restarts the clock


def test_rule_set_defaults_and_overrides():
    names = [r.name for r in rule_set(AlertsSettings())]
    assert {"gpu-hot", "memory-short", "memory-guard", "container-exited", "model-failed", "job-finished", "job-stalled", "incident"} <= set(names)
    hot = next(r for r in rule_set(AlertsSettings()) if r.name == "gpu-hot")
    assert (hot.metric, hot.op, hot.value, hot.for_s) == ("gpus.*.temperature_c", ">=", 90, 30)
    mine = AlertsSettings.model_validate(
        {"rule": [{"name": "gpu-hot", "metric": "gpus.*.temperature_c", "value": 80}, {"name": "job-stalled", "event": "log_silent", "enabled": False}]}
    )
    rules = {r.name: r for r in rule_set(mine)}
    assert rules["gpu-hot"].value == 80 and "job-stalled" not in rules
    assert [r.name for r in rule_set(AlertsSettings(defaults=False))] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x"},
        {"name": "x", "metric": "a", "event": "guard"},
        {"name": "x", "metric": "a", "op": "~"},
        {"name": "x", "event": "nope"},
        {"name": "x", "metric": "a", "severity": "loud"},
        {"name": "x", "event": "summary", "at": "25:00"},
    ],
)
def test_bad_rules_are_refused(bad):
    with pytest.raises(ValidationError):
        AlertRuleSettings(**bad)


def _alert(**kw):
    return {"id": 1, "rule": "r", "subject": "s", "state": "firing", "severity": "warning", "message": "m", **kw}


def test_routing_dedupe_and_rate_limit():
    d = Delivery(
        NotifySettings.model_validate(
            {"urls": ["json://127.0.0.1:9/"], "routes": [{"url": "json://127.0.0.1:9/c", "min_severity": "critical"}], "rate_per_hour": 2, "dedupe_s": 600}
        ),
        lambda _k: None,
    )
    d._ensure_thread = lambda: None  # nothing is sent here: only what is queued is counted
    assert d.submit(_alert()) == 1  # the critical-only route does not want a warning
    assert d.submit(_alert()) == 0 and d.counts["deduplicated"] == 1
    assert d.submit(_alert(subject="t", severity="critical")) == 2
    assert d.submit(_alert(subject="u")) == 0 and d.counts["dropped_rate"] == 1  # the first URL had 2 this hour
    assert d.submit(_alert(subject="info", severity="info")) == 0  # below min_severity


def test_missing_secret_disables_the_target_without_saying_the_url():
    d = Delivery(NotifySettings(urls=["ntfy://${NOPE_TOKEN}@ntfy.sh/topic"]), lambda _k: None)
    assert not d.enabled and d.targets[0].name == "ntfy://…#1"
    assert "NOPE_TOKEN" in d.targets[0].error


def test_render_lists_the_job_figures():
    title, body = render(_alert(host="spark", details={"exit_code": 3, "run_s": 12.0, "gpu_time_s": 4.2, "log_tail": ["a", "b"]}))
    assert title == "[spark] WARNING r FIRING"
    assert "exit_code: 3" in body and body.endswith("a\nb")


def test_client_keeps_agent_alerts_bounded_and_shows_them():
    c = AgentClient.__new__(AgentClient)
    c.agent_alerts = {}
    c._notify = lambda kind: None
    for i in range(60):
        assert (
            AgentClient.handle_frame(c, {"type": "alert", "id": i, "state": "firing", "severity": "critical", "rule": "r", "message": f"m{i}", "ts": 100.0})
            == "alert"
        )
    assert len(c.agent_alerts) == 50 and min(c.agent_alerts) == 10
    AgentClient.handle_frame(c, {"type": "alert", "id": 59, "state": "resolved", "rule": "r", "message": "ok", "ts": 101.0})
    assert 59 not in c.agent_alerts
    shown = agent_alerts(c.agent_alerts.values(), 200.0)
    assert shown[0].key == "agent.58" and shown[0].severity == "critical" and shown[0].message == "agent r: m58"
    old = {"id": 1, "state": "event", "rule": "container-exited", "message": "x", "ts": 0.0}
    assert agent_alerts([old], 10_000.0) == []
