"""Alerts (read) and watched containers (control, audited).

``GET /api/v1/alerts`` answers the firing alerts and the recent ones (a read token gets no
container log lines, as with model_state frames). ``POST /api/v1/containers/{id}/watch``
marks a running container so its end is notified, without restarting it;
``DELETE`` unmarks it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from agent.api.deps import audited, container_ref, engine_error, get_agent, require_action, require_read, service
from agent.api.errors import ApiError
from agent.auth import TokenInfo
from agent.containers.engine import EngineError
from agent.containers.service import ContainerService
from agent.runtime import Agent

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", summary="Firing alerts and the recent ones, newest first")
async def alerts(limit: int = Query(default=100, ge=1, le=1000), agent: Agent = Depends(get_agent), token: TokenInfo = Depends(require_read)) -> dict:
    return agent.alerts.listing(control=token.scope == "control", limit=limit)


async def _watch(agent: Agent, svc: ContainerService, ref: str, on: bool) -> dict:
    try:
        info = await svc.engine.call("GET", f"containers/{ref}/json")
    except EngineError as exc:
        raise engine_error(exc) from None
    cid, name = info["Id"], (info.get("Name") or "").lstrip("/")
    if on:
        if not (info.get("State") or {}).get("Running"):
            raise ApiError(409, "not_running", f"{name} is not running: only a running container can be watched")
        if not agent.alerts.watch(cid, name):
            raise ApiError(409, "too_many_watches", "256 containers are watched already; unwatch one first")
    else:
        agent.alerts.unwatch(cid)
    return {"id": cid[:12], "name": name, "watched": on}


@router.post("/containers/{id_or_name}/watch", summary="Notify when this running container ends (no restart)")
async def watch(
    request: Request, id_or_name: str, agent: Agent = Depends(get_agent), svc: ContainerService = Depends(service), _t: TokenInfo = Depends(require_action)
) -> dict:
    return await audited(svc, request, "watch", id_or_name, _watch(agent, svc, container_ref(id_or_name), True))


@router.delete("/containers/{id_or_name}/watch", summary="Stop watching this container")
async def unwatch(
    request: Request, id_or_name: str, agent: Agent = Depends(get_agent), svc: ContainerService = Depends(service), _t: TokenInfo = Depends(require_action)
) -> dict:
    return await audited(svc, request, "unwatch", id_or_name, _watch(agent, svc, container_ref(id_or_name), False))
