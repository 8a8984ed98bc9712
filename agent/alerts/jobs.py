"""Watched jobs: the watch set on disk, and what a watched run cost while it ran.

A container is watched when it carries the label ``sparkdeck.watch`` (any value), was started
by the model launcher (``sparkdeck.model``), or was marked with ``POST
/api/v1/containers/{id}/watch`` (kept in ``<state_dir>/watches.json``, 0600, so a restart
of the agent keeps it; a container cannot be relabelled without being re-created).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import statefiles
from agent.containers.catalog import MODEL_LABEL

log = logging.getLogger("sparkdeck.alerts")

WATCH_LABEL = "sparkdeck.watch"
MAX_WATCHES = 256
# throttle reasons that cost a job speed (gpu_idle and clock settings are not throttling)
SLOWING = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"})


class WatchSet:
    def __init__(self, path: Path):
        self.path = path
        self.items: dict[str, dict[str, Any]] = {}  # full id -> {name, since}
        try:
            raw = json.loads(path.read_text())
            self.items = {k: v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); starting with no watched containers", path, exc)

    def add(self, full_id: str, name: str) -> bool:
        """False when the set is full (MAX_WATCHES)."""
        if full_id not in self.items and len(self.items) >= MAX_WATCHES:
            return False
        self.items[full_id] = {"name": name, "since": round(time.time(), 3)}
        self._save()
        return True

    def remove(self, full_id: str) -> bool:
        if self.items.pop(full_id, None) is None:
            return False
        self._save()
        return True

    def __contains__(self, full_id: str) -> bool:
        return full_id in self.items

    def _save(self) -> None:
        statefiles.ensure_dir(self.path.parent)
        statefiles.write_file(self.path, (json.dumps(self.items) + "\n").encode())


def watched(full_id: str, entry: dict[str, Any], marks: WatchSet) -> str | None:
    """Why this container is watched ('label', 'model', 'marked'), or None."""
    labels = entry.get("labels") or {}
    if WATCH_LABEL in labels:
        return "label"
    if labels.get(MODEL_LABEL) or entry.get("model"):
        return "model"
    if full_id in marks:
        return "marked"
    return None


@dataclass
class JobStats:
    """Accumulated tick by tick while a watched container runs."""

    name: str
    why: str
    first_seen: float
    gpu_time_s: float = 0.0
    max_temperature_c: float | None = None
    throttled_s: float = 0.0
    last_ts: float | None = None
    model: str | None = None  # the catalog model a launcher container runs
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, ts: float, row: dict[str, Any] | None, gpus: list[dict[str, Any]], max_dt: float) -> None:
        dt = 0.0 if self.last_ts is None else min(max(ts - self.last_ts, 0.0), max_dt)
        self.last_ts = ts
        temps = [g["temperature_c"] for g in gpus if isinstance(g.get("temperature_c"), (int, float))]
        if temps:
            hottest = max(temps)
            self.max_temperature_c = hottest if self.max_temperature_c is None else max(self.max_temperature_c, hottest)
        if any(SLOWING.intersection(g.get("throttle_reasons") or ()) for g in gpus):
            self.throttled_s += dt
        # GPU time: while the container holds GPU memory, the GPU's busy share of the interval
        if row is not None and (row.get("gpu_memory_bytes") or 0) > 0:
            util = max((g.get("utilization_percent") or 0.0 for g in gpus), default=0.0)
            self.gpu_time_s += dt * util / 100.0

    def figures(self) -> dict[str, Any]:
        return {
            "gpu_time_s": round(self.gpu_time_s, 1),
            "max_temperature_c": self.max_temperature_c,
            "throttled_s": round(self.throttled_s, 1),
        }
