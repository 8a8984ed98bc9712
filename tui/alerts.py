"""Alert rules over one snapshot: pure functions, shared by the dashboard and ``sparkdeck status``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

Severity = Literal["warning", "critical"]


@dataclass(frozen=True)
class Alert:
    severity: Severity
    key: str  # stable id, e.g. "gpu0.temp"
    message: str


@dataclass(frozen=True)
class AlertRules:
    gpu_temp_c: float = 85.0  # warning at this GPU temperature
    gpu_temp_critical_c: float = 92.0
    memory_percent: float = 90.0  # host (and, on unified-memory machines, GPU) memory pressure
    swap_percent: float = 50.0
    model_exited: bool = True  # a model container that is not running

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertRules:
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown alert setting(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        kw: dict[str, Any] = {}
        for name, value in data.items():
            kw[name] = bool(value) if name == "model_exited" else float(value)
        return cls(**kw)


def evaluate(snap: dict[str, Any] | None, rules: AlertRules) -> list[Alert]:
    if not snap:
        return []
    out: list[Alert] = []
    for gpu in snap.get("gpus") or []:
        i = gpu.get("index")
        if gpu.get("status") == "error":
            out.append(Alert("critical", f"gpu{i}.error", f"GPU {i}: {gpu.get('error') or 'error'}"))
            continue
        temp = gpu.get("temperature_c")
        slowdown = gpu.get("temperature_slowdown_c")
        if temp is not None and slowdown is not None and temp >= slowdown:
            out.append(Alert("critical", f"gpu{i}.temp", f"GPU {i} at {temp:.0f} °C: at its slowdown point ({slowdown:.0f} °C)"))
        elif temp is not None and temp >= rules.gpu_temp_c:
            sev: Severity = "critical" if temp >= rules.gpu_temp_critical_c else "warning"
            out.append(Alert(sev, f"gpu{i}.temp", f"GPU {i} at {temp:.0f} °C (alert at {rules.gpu_temp_c:.0f})"))
        mem = gpu.get("memory") or {}
        if not mem.get("unified") and mem.get("total_bytes") and mem.get("used_bytes") is not None:
            pct = 100.0 * mem["used_bytes"] / mem["total_bytes"]
            if pct >= rules.memory_percent:
                out.append(Alert("warning", f"gpu{i}.mem", f"GPU {i} memory {pct:.0f}% used"))
    status = snap.get("gpu_status") or {}
    gpu_errors = any(a.key.endswith(".error") for a in out)
    if status.get("state") not in (None, "ok") and not (status.get("state") == "degraded" and gpu_errors):  # not twice for one lost GPU
        out.append(Alert("warning", "gpu.status", f"GPUs {status['state']}: {status.get('message', '')}"))
    host = snap.get("host") or {}
    mem = host.get("memory") or {}
    if mem.get("percent") is not None and mem["percent"] >= rules.memory_percent:
        unified = any((g.get("memory") or {}).get("unified") for g in snap.get("gpus") or [])
        what = "unified memory (CPU+GPU)" if unified else "memory"
        sev = "critical" if mem["percent"] >= 97 else "warning"
        out.append(Alert(sev, "host.mem", f"{what} {mem['percent']:.0f}% used (alert at {rules.memory_percent:.0f})"))
    swap = host.get("swap") or {}
    if swap.get("total_bytes") and swap.get("percent", 0) >= rules.swap_percent:
        out.append(Alert("warning", "host.swap", f"swap {swap['percent']:.0f}% used"))
    if rules.model_exited:
        for c in snap.get("containers") or []:
            if c.get("model") and c.get("state") in ("exited", "dead"):
                out.append(Alert("critical", f"model.{c.get('name')}", f"model {c['model']} ({c.get('name')}) {c.get('status') or c.get('state')}"))
            elif c.get("model") and c.get("model_state") == "failed":
                out.append(
                    Alert("critical", f"model.{c.get('name')}", f"model {c['model']} failed: {c.get('model_error') or c.get('status') or ''}".rstrip(": "))
                )
    return out


GUARD_ALERT_S = 600.0  # a memory guard action stays in the alerts panel for ten minutes
GUARD_ALERTS_SHOWN = 3


def guard_alerts(events: Iterable[dict[str, Any]], now: float) -> list[Alert]:
    """The agent's memory guard acted (``guard`` frames): the latest few, newest first.

    Critical when it stopped (or failed to stop) something, a warning when it only warned."""
    out: list[Alert] = []
    for ev in reversed(list(events)):
        ts = ev.get("ts")
        if not isinstance(ts, (int, float)) or now - ts > GUARD_ALERT_S:
            continue
        sev: Severity = "warning" if ev.get("result") == "warned" else "critical"
        at = time.strftime("%H:%M:%S", time.localtime(ts))
        out.append(Alert(sev, f"guard.{ts}", f"memory guard {at}: {ev.get('message') or ev.get('result')}"))
        if len(out) == GUARD_ALERTS_SHOWN:
            break
    return out


AGENT_EVENT_S = 600.0  # a one-shot agent alert (a job ended) stays in the panel for ten minutes


def agent_alerts(frames: Iterable[dict[str, Any]], now: float) -> list[Alert]:
    """Alerts the agent's own rules raised (``alert`` frames), beside the local thresholds above:
    firing ones, and one-shot events of the last ten minutes. Guard actions are shown from their
    own ``guard`` frames already, so their alert is not shown twice."""
    out: list[Alert] = []
    for f in reversed(list(frames)):
        details = f.get("details") or {}
        if "result" in details and details.get("result") is not None:
            continue
        ts = f.get("ts")
        if f.get("state") == "event" and (not isinstance(ts, (int, float)) or now - ts > AGENT_EVENT_S):
            continue
        sev: Severity = "critical" if f.get("severity") == "critical" else "warning"
        out.append(Alert(sev, f"agent.{f.get('id')}", f"agent {f.get('rule')}: {f.get('message')}"))
    return out
