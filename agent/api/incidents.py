"""GET /api/v1/incidents: earlier runs that did not end cleanly (crash, freeze, power cut)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from agent.api.deps import get_agent, require_read
from agent.protocol import IncidentList
from agent.runtime import Agent

router = APIRouter(prefix="/api/v1")


@router.get("/incidents", summary="Incidents, newest first", dependencies=[Depends(require_read)], response_model=IncidentList)
async def incidents(
    samples: bool = Query(True, description="false leaves out each incident's samples (a short listing)"),
    agent: Agent = Depends(get_agent),
) -> dict:
    body = agent.incidents.listing()
    if not samples:
        body["incidents"] = [{**i, "samples": []} for i in body["incidents"]]
    return body
