"""The rule set (built-ins merged with ``[[alerts.rule]]``) and the pure pieces of evaluating it.

A metric rule names a dotted path into the snapshot frame; ``*`` walks a list, and each
element is its own subject (``gpus.0.temperature_c`` and ``gpus.1.temperature_c`` fire
apart). Nothing here does I/O: the engine calls it from the sampler's listener.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

from agent.settings import SEVERITIES, AlertRuleSettings, AlertsSettings

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}

# Built-ins (README: "Overnight: alerts and notifications"). thermal-critical reads the
# collector's ready-made margin (critical trip − temperature), so one constant fits every zone.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "gpu-hot", "metric": "gpus.*.temperature_c", "op": ">=", "value": 90, "for_s": 30, "severity": "critical"},
    {"name": "thermal-critical", "metric": "host.thermal_zones.*.critical_margin_c", "op": "<=", "value": 5, "for_s": 5, "severity": "critical"},
    {"name": "memory-short", "metric": "host.memory.models_available_bytes", "op": "<", "value": 0, "for_s": 0, "severity": "critical"},
    {"name": "memory-guard", "event": "guard", "severity": "critical"},
    {"name": "container-exited", "event": "container_exit", "severity": "warning"},
    {"name": "model-failed", "event": "model_failed", "severity": "warning"},
    {"name": "job-finished", "event": "gpu_idle", "value": 5, "for_s": 600, "severity": "info"},
    {"name": "job-stalled", "event": "log_silent", "for_s": 1800, "severity": "warning"},
    {"name": "incident", "event": "incident", "severity": "warning"},
)


def rule_set(settings: AlertsSettings) -> list[AlertRuleSettings]:
    """Built-ins (unless ``defaults = false``) replaced by name by the user's rules; disabled ones dropped."""
    rules: dict[str, AlertRuleSettings] = {}
    if settings.defaults:
        for raw in DEFAULT_RULES:
            rules[raw["name"]] = AlertRuleSettings(**raw)
    for rule in settings.rule:
        rules[rule.name] = rule
    return [r for r in rules.values() if r.enabled]


def values_at(frame: Any, path: str) -> Iterator[tuple[str, float]]:
    """(subject, value) for each number at ``path`` in the frame; missing or null values yield nothing."""
    yield from _walk(frame, path.split("."), [])


def _walk(node: Any, parts: list[str], seen: list[str]) -> Iterator[tuple[str, float]]:
    if not parts:
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            yield ".".join(seen), float(node)
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = enumerate(node) if isinstance(node, list) else (node.items() if isinstance(node, dict) else ())
        for key, child in items:
            # a thermal zone is named by its sysfs name, not its list position: the alert says which
            # zone, and a zone listed later (a driver loading) does not shift another's subject
            if isinstance(child, dict) and isinstance(child.get("zone"), str):
                key = child["zone"]
            yield from _walk(child, rest, seen + [str(key)])
    elif isinstance(node, dict) and head in node:
        yield from _walk(node[head], rest, seen + [head])
    elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
        yield from _walk(node[int(head)], rest, seen + [head])


def at_least(severity: str, floor: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(floor)


class Holder:
    """When a condition has held since, per subject: a metric rule fires once it held ``for_s``."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    def update(self, subject: str, true: bool, now: float, for_s: float) -> bool | None:
        """True: should be firing; False: should not; None: true but not long enough yet."""
        if not true:
            self.since.pop(subject, None)
            return False
        start = self.since.setdefault(subject, now)
        return True if now - start >= for_s else None
