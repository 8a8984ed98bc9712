"""The morning summary: an optional rule (``event = "summary"``, ``at = "HH:MM"`` local time) that
sends, once a day, what ran, the alerts, the incidents and the GPU energy used since the last one.

Energy comes from NVML's total-energy counter (``gpus[].energy_j``): the engine adds up the
increase between samples (a counter that goes backwards, a driver reload, is skipped), so it
covers the time the agent was running. When the last summary went out is kept in
``<state_dir>/summary.json`` (0600), so "since the last one" spans agent restarts.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent import statefiles


def next_at(hhmm: str, now: float) -> float:
    """The next local time HH:MM after ``now`` (Unix time), across DST changes."""
    hh, mm = (int(x) for x in hhmm.split(":"))
    t = time.localtime(now)
    for day in range(3):
        cand = time.mktime((t.tm_year, t.tm_mon, t.tm_mday + day, hh, mm, 0, 0, 0, -1))
        if cand > now:
            return cand
    return now + 86400  # unreachable: within three days HH:MM always comes round


class EnergyMeter:
    """Joules used by all GPUs since ``reset``, from the NVML counter in each frame."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.joules = 0.0
        self.seen = False  # some GPU reports the counter at all

    def add(self, gpus: Iterable[dict[str, Any]]) -> None:
        for g in gpus:
            e, i = g.get("energy_j"), g.get("index")
            if not isinstance(e, (int, float)) or not isinstance(i, int):
                continue
            self.seen = True
            prev = self.last.get(i)
            if prev is not None and e >= prev:
                self.joules += e - prev
            self.last[i] = e

    def take(self) -> float | None:
        j, self.joules = self.joules, 0.0
        return round(j, 1) if self.seen else None


class SummaryClock:
    def __init__(self, path: Path):
        self.path = path

    def last(self) -> float | None:
        try:
            v = json.loads(self.path.read_text()).get("last")
            return float(v) if isinstance(v, (int, float)) else None
        except (OSError, ValueError, AttributeError):
            return None

    def mark(self, ts: float) -> None:
        statefiles.write_file(self.path, (json.dumps({"last": ts}) + "\n").encode())


def build(
    since: float, until: float, alerts: Iterable[dict[str, Any]], running: list[str], incidents: Iterable[dict[str, Any]], energy_j: float | None
) -> tuple[str, dict[str, Any]]:
    """(message, details.summary) for the period since..until."""
    period = [a for a in alerts if since <= (a.get("ts") or 0) < until and a.get("rule") and a.get("state") != "resolved" and a.get("subject") != "summary"]
    ended = [a for a in period if (a.get("details") or {}).get("exit_code", "x") != "x" and (a.get("details") or {}).get("container")]
    by_rule = Counter(a["rule"] for a in period if a not in ended)
    n_inc = sum(1 for i in incidents if since <= (i.get("detected_at") or 0) < until)
    jobs = [{"name": a["details"]["container"], "exit_code": a["details"].get("exit_code"), "run_s": a["details"].get("run_s")} for a in ended]
    lines = [f"since {time.strftime('%a %H:%M', time.localtime(since))}:"]
    lines.append("ended: " + (", ".join(f"{j['name']} (exit {j['exit_code']})" for j in jobs) if jobs else "nothing"))
    lines.append("running: " + (", ".join(running) if running else "nothing watched"))
    lines.append("alerts: " + (", ".join(f"{r} ×{n}" for r, n in sorted(by_rule.items())) if by_rule else "none"))
    lines.append(f"incidents: {n_inc}")
    lines.append("GPU energy: " + ("n/a (the GPU has no energy counter)" if energy_j is None else f"{energy_j / 3.6e6:.2f} kWh"))
    details = {"since": since, "until": until, "ended": jobs, "running": running, "alerts": dict(by_rule), "incidents": n_inc, "energy_j": energy_j}
    return "\n".join(lines), details
