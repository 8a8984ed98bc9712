"""The model launcher: catalog with live state, start (pull, create, probe) and stop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api.deps import audited, engine_error, require_action, require_read, service
from agent.api.errors import ApiError
from agent.auth import TokenInfo
from agent.containers.audit import clip
from agent.containers.engine import EngineError
from agent.containers.launcher import LaunchError
from agent.containers.service import ContainerService

router = APIRouter(prefix="/api/v1", tags=["models"])


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, str | int | float] = Field(default_factory=dict, description="overrides of the template's params")
    port: int | None = Field(default=None, ge=1, le=65535, description="host port for the template's health (or first) port")
    force: bool = Field(default=False, description="start even if the memory fit check says it does not fit (audited)")
    bind: str | None = Field(
        default=None, max_length=64, description="host address to publish on (default the template's, else 127.0.0.1); must be in models_bind_allowed"
    )


async def _launch(work) -> Any:
    try:
        return await work
    except LaunchError as exc:
        raise ApiError(exc.status, exc.code, exc.message, extra=exc.extra) from None
    except EngineError as exc:
        raise engine_error(exc) from None


@router.get("/models", summary="The catalog with each model's state; secrets are never included (nor, for a read token, a failed model's log lines)")
async def list_models(svc: ContainerService = Depends(service), token: TokenInfo = Depends(require_read)) -> dict:
    return {"models": svc.launcher.catalog_states(token.scope), "errors": svc.catalog.errors}


@router.post("/models/{name}/start", status_code=202, summary="Start a model: pull if needed, create, start, then probe until ready")
async def start_model(
    request: Request,
    name: str,
    req: StartRequest | None = Body(default=None),
    svc: ContainerService = Depends(service),
    _t: TokenInfo = Depends(require_action),
) -> dict:
    req = req or StartRequest()
    # each param cut on its own, so one huge value cannot hide the others in the audit line
    detail = (
        ", ".join(f"{clip(k, 64)}={clip(str(v), 64)}" for k, v in sorted(req.params.items()))
        + (f" port={req.port}" if req.port else "")
        + (f" bind={clip(req.bind, 64)}" if req.bind else "")
        + (" force" if req.force else "")
    )
    return await audited(
        svc,
        request,
        "model_start",
        name,
        _launch(svc.launcher.start(name, params=req.params, port=req.port, bind=req.bind, force=req.force)),
        detail=detail.strip() or None,
    )


@router.post("/models/{name}/stop", summary="Stop a running model's container")
async def stop_model(
    request: Request,
    name: str,
    timeout_s: int = Query(default=10, ge=0, le=3600, description="seconds between SIGTERM and SIGKILL"),
    svc: ContainerService = Depends(service),
    _t: TokenInfo = Depends(require_action),
) -> dict:
    return await audited(svc, request, "model_stop", name, _launch(svc.launcher.stop(name, timeout_s)))
