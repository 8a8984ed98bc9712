"""Pure logic of an incident: compact samples from snapshot frames, the figures, the likely cause.

A stored frame is ~8 KB of JSON (per-core CPU, every sensor, every container); 120 of
them per incident would be a megabyte of mostly noise. An incident keeps, per sample,
what tells a memory or thermal end apart: MemAvailable and what is left for models,
memory pressure (PSI), the hottest sensor, and per GPU its utilization, temperature,
power and throttle reasons (``IncidentSample`` in agent/protocol.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

WINDOW_S = 120.0  # samples kept before the last one
MAX_SAMPLES = 240  # at 0.1 s intervals 120 s is 1,200 samples: thinned evenly to this
THERMAL_REASONS = {"sw_thermal_slowdown", "hw_thermal_slowdown"}
GiB = 1024**3


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


def compact(frame: dict[str, Any], *, reserve_bytes: int, ignore_sensors: Iterable[str] = ()) -> dict[str, Any]:
    """One IncidentSample from a snapshot frame.

    Reads ``host.memory.models_available_bytes`` and ``host.memory.pressure`` when the frame
    has them; otherwise available − reserve and null pressure (frames from agents that
    predate the memory picture).
    """
    host = frame.get("host") or {}
    mem = host.get("memory") or {}
    available = _int(mem.get("available_bytes"))
    if available is None and _int(mem.get("total_bytes")) is not None and _int(mem.get("used_bytes")) is not None:
        available = int(mem["total_bytes"]) - int(mem["used_bytes"])
    models = _int(mem.get("models_available_bytes"))
    if models is None and available is not None:
        models = available - reserve_bytes
    pressure = mem.get("pressure") or {}
    gpus: list[dict[str, Any]] = []
    temps: list[float] = []
    for g in frame.get("gpus") or []:
        if g.get("status") != "ok":
            continue
        t = _num(g.get("temperature_c"))
        if t is not None:
            temps.append(t)
        gpus.append(
            {
                "index": int(g.get("index", len(gpus))),
                "utilization_percent": _num(g.get("utilization_gpu_percent")),
                "temperature_c": t,
                "power_w": _num(g.get("power_w")),
                "throttle_reasons": g.get("throttle_reasons"),
            }
        )
    ignore = tuple(ignore_sensors)
    for s in host.get("temperatures") or []:
        t = _num(s.get("current_c"))
        if t is not None and not str(s.get("chip", "")).startswith(ignore or ("\0",)):
            temps.append(t)
    return {
        "ts": float(frame.get("ts", 0.0)),
        "seq": int(frame.get("seq", 0)),
        "available_bytes": available,
        "models_available_bytes": models,
        "psi_some_avg10": _num(pressure.get("some_avg10")),
        "psi_full_avg10": _num(pressure.get("full_avg10")),
        "hottest_c": max(temps) if temps else None,
        "gpus": gpus,
    }


def thin(samples: list[dict[str, Any]], limit: int = MAX_SAMPLES) -> list[dict[str, Any]]:
    """At most ``limit`` samples spread evenly over the window, always keeping the last one."""
    if len(samples) <= limit:
        return samples
    step = len(samples) / limit
    picked = [samples[len(samples) - 1 - int(i * step)] for i in range(limit)]
    return picked[::-1]


def temperature_limit(frame: dict[str, Any] | None, default_c: float) -> float:
    """The lowest slowdown threshold a GPU reports, else the configured throttle temperature."""
    limits = [_num(g.get("temperature_slowdown_c")) for g in (frame or {}).get("gpus") or []]
    known = [v for v in limits if v is not None]
    return min(known) if known else default_c


def figures(samples: list[dict[str, Any]], temp_limit_c: float) -> dict[str, Any]:
    def pick(key: str, fn):
        vals = [s[key] for s in samples if s.get(key) is not None]
        return fn(vals) if vals else None

    reasons: set[str] = set()
    for s in samples:
        for g in s["gpus"]:
            reasons.update(g.get("throttle_reasons") or [])
    reasons.discard("gpu_idle")  # an idle GPU clocks down: not a sign of trouble
    return {
        "min_available_bytes": pick("available_bytes", min),
        "min_models_available_bytes": pick("models_available_bytes", min),
        "max_psi_some_avg10": pick("psi_some_avg10", max),
        "max_psi_full_avg10": pick("psi_full_avg10", max),
        "max_temperature_c": pick("hottest_c", max),
        "temperature_limit_c": temp_limit_c,
        "throttle_reasons": sorted(reasons),
    }


def likely_cause(fig: dict[str, Any], *, reserve_bytes: int, psi_full_limit: float, samples: int) -> tuple[str, str]:
    """(cause, one line). The rule, in order (memory first: it is what freezes a Spark):

    memory       some sample had nothing left for models (available − reserve < 0), or PSI
                 ``full avg10`` reached ``memory_guard.psi_full``;
    temperature  the hottest sensor reached the limit (the lowest GPU slowdown threshold,
                 else ``noise.throttle_c``), or a GPU reported a thermal slowdown;
    unknown      neither, or no samples at all.
    """
    if samples == 0:
        return "unknown", "unknown: no samples were stored before the end (history off, or it ended before the first sample)"
    low = fig["min_models_available_bytes"]
    full = fig["max_psi_full_avg10"]
    if (low is not None and low < 0) or (full is not None and full >= psi_full_limit):
        parts = []
        if fig["min_available_bytes"] is not None:
            parts.append(f"{fig['min_available_bytes'] / GiB:.1f} GiB available at the low point (reserve {reserve_bytes / GiB:.1f} GiB)")
        if full is not None:
            parts.append(f"memory pressure full {full:.0f} %")
        return "memory", "memory exhausted: " + ", ".join(parts)
    hot = fig["max_temperature_c"]
    thermal = sorted(THERMAL_REASONS & set(fig["throttle_reasons"]))
    if (hot is not None and hot >= fig["temperature_limit_c"]) or thermal:
        parts = [f"{hot:.0f} °C (limit {fig['temperature_limit_c']:.0f} °C)"] if hot is not None else []
        parts += thermal
        return "temperature", "over temperature: " + ", ".join(parts)
    return "unknown", "unknown: memory and temperatures were within limits up to the last sample"


def running_containers(frame: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {k: c.get(k) for k in ("id", "name", "image", "model", "memory_bytes", "gpu_memory_bytes")}
        for c in (frame or {}).get("containers") or []
        if c.get("state") == "running"
    ]


GUARD_ACTOR = "memory-guard"
MAX_GUARD_ACTIONS = 20


def guard_actions(audit: Iterable[dict[str, Any]], start: float | None, end: float | None) -> list[dict[str, Any]]:
    """The memory guard's audit entries between the run's start and a little after its last sample."""
    lo = start if start is not None else 0.0
    hi = (end if end is not None else float("inf")) + 10.0  # an action in the last instant may be logged after the sample
    out = []
    for e in audit:
        t = _num(e.get("time"))
        if GUARD_ACTOR not in (e.get("token"), e.get("actor")) or t is None or not lo <= t <= hi:
            continue
        out.append(
            {
                "time": t,
                "action": str(e.get("action", "")),
                "target": str(e.get("target", "")),
                "result": str(e.get("result", "")),
                "detail": str(e["detail"]) if e.get("detail") is not None else None,
            }
        )
    return out[-MAX_GUARD_ACTIONS:]


def build(
    *,
    incident_id: int,
    kind: str,
    detected_at: float,
    run: dict[str, Any],
    frames: list[dict[str, Any]],
    reserve_bytes: int,
    psi_full_limit: float,
    throttle_c: float,
    ignore_sensors: Iterable[str] = (),
    audit: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The Incident (agent/protocol.py) for a run whose stored frames, oldest first, are ``frames``;
    ``audit`` is the tail of the audit log, for what the memory guard did in that run."""
    ignore = tuple(ignore_sensors)
    samples = thin([compact(f, reserve_bytes=reserve_bytes, ignore_sensors=ignore) for f in frames])
    last = frames[-1] if frames else None
    fig = figures(samples, temperature_limit(last, throttle_c))
    cause, text = likely_cause(fig, reserve_bytes=reserve_bytes, psi_full_limit=psi_full_limit, samples=len(samples))
    return {
        "id": incident_id,
        "kind": kind,
        "detected_at": detected_at,
        "run_started": _num(run.get("started")),
        "agent_version": run.get("agent_version") if isinstance(run.get("agent_version"), str) else None,
        "last_sample_ts": float(last["ts"]) if last else None,
        "window_s": WINDOW_S,
        "cause": cause,
        "cause_text": text,
        "figures": fig,
        "containers": running_containers(last),
        "guard_actions": guard_actions(audit, _num(run.get("started")), float(last["ts"]) if last else None),
        "samples": samples,
    }
