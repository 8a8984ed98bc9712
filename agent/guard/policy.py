"""The memory guard's decisions, as pure functions: when it trips, and which container it stops.

No I/O here, so every rule is unit-tested (tests/unit/test_memory_guard_policy.py) without a
kernel or an engine; agent.guard.service feeds it readings and containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agent.collectors.memory import held_bytes, models_available

Cause = Literal["memory", "pressure"]
ALLOW_LABEL = "sparkdeck.guard"  # `sparkdeck.guard=allow` makes a container not started by sparkdeck eligible for stop-largest


@dataclass
class Tripwire:
    """Trips on ``models_available < 0`` at once, or on PSI full pressure ≥ psi_full held for hold_s.

    Pressure is "high" while ``full avg10`` ≥ psi_full or a PSI trigger fired within its window.
    avg10 is a 10 s average and lags: after the guard has acted, it stays high for seconds
    though the stall stopped, so from then on only the stall measured since the action (the
    kernel's ``total`` counter) or a fresh trigger counts — otherwise one runaway would cost
    every model on the box.
    """

    reserve_bytes: int
    psi_full: float
    hold_s: float
    trigger_window_s: float = 2.0
    high_since: float | None = None
    last_trigger: float | None = None
    acted_at: float | None = None
    acted_total_us: int | None = None

    def update(self, now: float, available_bytes: int | None, pressure: tuple[float, int] | None, triggered: bool = False) -> Cause | None:
        if triggered:
            self.last_trigger = now
        high = self._pressure_high(now, pressure)
        if not high:
            self.high_since = None
        elif self.high_since is None:
            self.high_since = now
        if available_bytes is not None and models_available(available_bytes, self.reserve_bytes) < 0:
            return "memory"
        if high and self.high_since is not None and now - self.high_since >= self.hold_s:
            return "pressure"
        return None

    def _pressure_high(self, now: float, pressure: tuple[float, int] | None) -> bool:
        if self.psi_full <= 0:
            return False
        fresh_trigger = self.last_trigger is not None and now - self.last_trigger <= self.trigger_window_s
        if fresh_trigger and (self.acted_at is None or self.last_trigger > self.acted_at):  # type: ignore[operator]
            return True
        if pressure is None:
            return False
        avg10, total_us = pressure
        if self.acted_at is None or self.acted_total_us is None:
            return avg10 >= self.psi_full
        elapsed = now - self.acted_at
        if elapsed <= 0:
            return False
        return 100.0 * (total_us - self.acted_total_us) / (elapsed * 1e6) >= self.psi_full

    def acted(self, now: float, pressure: tuple[float, int] | None) -> None:
        """The guard just acted: pressure must be shown afresh before it acts on pressure again."""
        self.acted_at = now
        self.acted_total_us = pressure[1] if pressure else None
        self.high_since = None

    def reset(self) -> None:
        """The episode is over (memory and pressure back to normal)."""
        self.acted_at = self.acted_total_us = self.high_since = None


def _has_label(row: dict[str, Any], label: str | None) -> bool:
    if not label:
        return True
    key, _, value = label.partition("=")
    labels = row.get("labels") or {}
    return key in labels and (not value or labels[key] == value)


def eligible(row: dict[str, Any], action: str, *, any_container: bool = False, only_label: str | None = None) -> bool:
    """May the guard stop this container under ``action``?

    stop-newest-model: only model containers the launcher started (label sparkdeck.model).
    stop-largest: those, or ones labelled sparkdeck.guard=allow, or any with any_container.
    ``only_label`` (key or key=value) narrows both to containers carrying it.
    """
    if row.get("state") != "running" or not _has_label(row, only_label):
        return False
    is_model = bool(row.get("model"))
    if action == "stop-newest-model":
        return is_model
    if action == "stop-largest":
        return any_container or is_model or (row.get("labels") or {}).get(ALLOW_LABEL) == "allow"
    return False


def choose(
    rows: list[dict[str, Any]],
    action: str,
    *,
    started: dict[str, float] | None = None,
    any_container: bool = False,
    only_label: str | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any] | None:
    """The container to stop next, or None when nothing is eligible.

    ``started``: full id -> start time (Unix); a container without one falls back to its
    creation time. ``skip``: full ids already tried in this episode.
    """
    pool = [r for r in rows if r.get("full_id") not in skip and eligible(r, action, any_container=any_container, only_label=only_label)]
    if not pool:
        return None
    if action == "stop-newest-model":
        when = started or {}
        return max(pool, key=lambda r: (when.get(r.get("full_id", "")) or r.get("created") or 0, r.get("full_id", "")))
    return max(pool, key=lambda r: (held_bytes(r), r.get("full_id", "")))
