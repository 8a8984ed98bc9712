"""Read-only REST: health (no auth), the latest snapshot, agent info."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from agent.api.deps import get_agent, require_read
from agent.api.errors import ApiError
from agent.protocol import Info, Snapshot
from agent.runtime import Agent

router = APIRouter(prefix="/api/v1")


@router.get("/health", summary="Liveness; no auth, no details")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/snapshot",
    summary="The latest snapshot frame",
    dependencies=[Depends(require_read)],
    response_model=Snapshot,
    responses={503: {"description": "no snapshot sampled yet"}},
)
async def snapshot(agent: Agent = Depends(get_agent)) -> Response:
    text = agent.ring.latest_text
    if text is None:
        raise ApiError(503, "not_ready", "no snapshot sampled yet")
    return Response(content=text, media_type="application/json")  # already encoded once by the sampler


@router.get("/info", summary="Agent version, protocol version, static host facts", dependencies=[Depends(require_read)], response_model=Info)
async def info(agent: Agent = Depends(get_agent)) -> dict:
    return agent.info()
