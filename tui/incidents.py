"""Incidents as the client shows them: fetched from GET /api/v1/incidents, one line each, details.

Shared by ``sparkdeck incidents`` and the TUI's incidents screen; no Textual here.
Exit codes of the command, as ``sparkdeck status``: 0 answered, 1 unreachable,
2 usage error, 3 auth failed, 4 the agent has no incidents route (older agent).
"""

from __future__ import annotations

import time
from typing import Any

from tui import format as fmt
from tui.client import ApiFailure, Target, rest_call
from tui.status import EXIT_AUTH, EXIT_INCOMPATIBLE, EXIT_OK, EXIT_UNREACHABLE

PATH = "/api/v1/incidents"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else fmt.NA


def fetch(target: Target, timeout: float = 5.0) -> tuple[int, dict[str, Any] | None, str]:
    """(exit code, the IncidentList body or None, error text)."""
    try:
        body = rest_call(target.url, target.token, "GET", PATH, timeout=timeout, context=target.ssl)
    except ApiFailure as exc:
        if exc.status in (401, 403):
            return EXIT_AUTH, None, f"auth failed: {exc.detail}"
        if exc.status == 404:
            return EXIT_INCOMPATIBLE, None, "this agent keeps no incidents (it predates them)"
        return EXIT_UNREACHABLE, None, exc.detail if exc.status == 0 else f"HTTP {exc.status}: {exc.detail}"
    if not isinstance(body, dict) or not isinstance(body.get("incidents"), list):
        return EXIT_INCOMPATIBLE, None, "the agent's answer is not an incident list"
    return EXIT_OK, body, ""


def summary(inc: dict[str, Any]) -> str:
    """One line: when it ended, what kind, the likely cause."""
    names = [c.get("name") or c.get("id") for c in inc.get("containers") or []]
    running = f"  [{len(names)} running: {', '.join(names[:3])}{'…' if len(names) > 3 else ''}]" if names else ""
    return f"#{inc.get('id')}  {when(inc.get('last_sample_ts') or inc.get('detected_at'))}  {inc.get('kind')}  {inc.get('cause_text')}{running}"


def details(inc: dict[str, Any]) -> list[str]:
    """The lines under an incident's summary: figures, containers, the samples' span."""
    f = inc.get("figures") or {}
    samples = inc.get("samples") or []
    some, full = f.get("max_psi_some_avg10"), f.get("max_psi_full_avg10")
    pressure = "n/a" if some is None and full is None else f"some {fmt.num(some, '%')} full {fmt.num(full, '%')}"
    lines = [
        f"run started {when(inc.get('run_started'))}, agent {inc.get('agent_version') or fmt.NA}; found {when(inc.get('detected_at'))}",
        f"at the end: min available {fmt.size(f.get('min_available_bytes'))} (for models {fmt.size(f.get('min_models_available_bytes'))}), "
        f"max pressure {pressure}, hottest {fmt.num(f.get('max_temperature_c'), ' °C')} (limit {fmt.num(f.get('temperature_limit_c'), ' °C')}), "
        f"throttle {', '.join(f.get('throttle_reasons') or []) or 'none'}",
    ]
    for c in inc.get("containers") or []:
        lines.append(
            f"  container {c.get('name')} ({c.get('image') or '?'}{', model ' + c['model'] if c.get('model') else ''}): "
            f"memory {fmt.size(c.get('memory_bytes'))}, GPU memory {fmt.size(c.get('gpu_memory_bytes'))}"
        )
    for g in inc.get("guard_actions") or []:
        lines.append(
            f"  memory guard {fmt.clock_time(g['time'])}: {g.get('action')} {g.get('target')} → {g.get('result')}"
            + (f" ({g['detail']})" if g.get("detail") else "")
        )
    if samples:
        span = samples[-1]["ts"] - samples[0]["ts"]
        lines.append(f"{len(samples)} samples over the last {fmt.duration(span)} before the end")
    return lines


def render_text(body: dict[str, Any]) -> str:
    incidents = body.get("incidents") or []
    if not incidents:
        return "no incidents: every earlier run of the agent ended cleanly"
    out = []
    for inc in incidents:
        out.append(summary(inc))
        out.extend("    " + line for line in details(inc))
    return "\n".join(out)
