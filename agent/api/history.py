"""GET /api/v1/history: series for chosen metrics over a time range, at a fitting resolution."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query

from agent.api.deps import get_agent, require_read
from agent.api.errors import ApiError
from agent.history.events import MAX_RESULTS
from agent.history.series import METRIC_RE
from agent.protocol import EventList
from agent.runtime import Agent

router = APIRouter(prefix="/api/v1")

MAX_POINTS = 2000


@router.get("/history", summary="Stored series (min/avg/max per step)", dependencies=[Depends(require_read)])
async def history(
    metrics: str = Query(..., description="comma-separated, e.g. gpu0.utilization_percent,gpu0.power_w,cpu.percent", max_length=2000),
    from_: float | None = Query(None, alias="from", description="Unix time; default: to - 1 h"),
    to: float | None = Query(None, description="Unix time; default: now"),
    step: float | None = Query(None, gt=0, le=86400, description="seconds per point; default fits ~500 points"),
    agent: Agent = Depends(get_agent),
) -> dict:
    if agent.history is None:
        raise ApiError(404, "history_disabled", "history is switched off on this agent (history = false)")
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    bad = [m[:60] for m in names if not METRIC_RE.match(m)]
    if not names or bad or len(names) > 32:
        raise ApiError(400, "bad_metrics", f"unknown metric(s): {', '.join(bad) or '(none given)'}; e.g. cpu.percent, memory.used_bytes, gpu0.power_w")
    end = to if to is not None else time.time()
    start = from_ if from_ is not None else end - 3600
    if not (0 <= start < end) or end - start > 400 * 86400:
        raise ApiError(400, "bad_range", "need 0 <= from < to, spanning at most 400 days")
    step = step or max(1.0, (end - start) / 500)
    if (end - start) / step > MAX_POINTS:
        raise ApiError(400, "bad_step", f"that step gives more than {MAX_POINTS} points; use a larger step")
    result = await agent.history.store.query(names, start, end, step)
    if result is None:
        raise ApiError(503, "history_unavailable", agent.history.store.status["message"])
    result["status"] = agent.history.store.status
    return result


EVENT_KINDS = ("throttle",)


@router.get("/events", summary="Throttle events (start and end) overlapping a time range", dependencies=[Depends(require_read)], response_model=EventList)
async def events(
    kind: str = Query("throttle", description="throttle: a GPU clock-event reason (gpu_idle left out)", max_length=32),
    from_: float | None = Query(None, alias="from", description="Unix time; default: to - 1 h"),
    to: float | None = Query(None, description="Unix time; default: now"),
    agent: Agent = Depends(get_agent),
) -> dict:
    if kind not in EVENT_KINDS:
        raise ApiError(400, "bad_kind", f"unknown event kind {kind[:32]!r}; known: {', '.join(EVENT_KINDS)}")
    end = to if to is not None else time.time()
    start = from_ if from_ is not None else end - 3600
    if not (0 <= start <= end):
        raise ApiError(400, "bad_range", "need 0 <= from <= to")
    found = await agent.throttle_events.query(start, end, MAX_RESULTS + 1)
    if found is None:
        raise ApiError(503, "history_unavailable", agent.history.store.status["message"] if agent.history else "history unavailable")
    return {"kind": kind, "from": start, "to": end, "events": found[:MAX_RESULTS], "truncated": len(found) > MAX_RESULTS}
