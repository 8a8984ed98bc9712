"""Containers: list, actions (start/stop/restart/remove), logs (tail and a follow stream), audit log.

Actions and logs need a control token (logs can carry whatever a program
prints, secrets included) and ``control_enabled``; every action is audited.
The follow stream ends with close code 1000 when the container stops
(CLOSE_LOG_END) and 1011 when the engine fails; an unknown container is refused with 404.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from starlette.websockets import WebSocketDisconnect

from agent.api.deps import CONTROL_OFF, audited, container_ref, deny, engine_error, require_action, require_control, require_read, service, stream_endpoint
from agent.api.errors import ApiError
from agent.auth import TokenInfo
from agent.containers import logs as container_logs
from agent.containers.actions import BadReference, Refused, check_ref, run_action
from agent.containers.engine import EngineError
from agent.containers.service import ContainerService
from agent.protocol import CLOSE_ENGINE_ERROR, CLOSE_LOG_END, encode, error_frame, frame
from agent.runtime import Agent

router = APIRouter(prefix="/api/v1", tags=["containers"])


@router.get("/containers", summary="The live container list (as in the snapshot)", dependencies=[Depends(require_read)])
async def list_containers(svc: ContainerService = Depends(service)) -> dict:
    return {"containers": svc.tracker.rows(), "containers_status": svc.tracker.status}


async def _act(svc: ContainerService, ref: str, action: str, **kw: Any) -> dict:
    try:
        return await run_action(svc.engine, svc.tracker, ref, action, **kw)
    except Refused as exc:
        raise ApiError(409, "refused", str(exc)) from None
    except EngineError as exc:
        raise engine_error(exc) from None


@router.post("/containers/{id_or_name}/start", summary="Start a container; answers its new state")
async def start(request: Request, id_or_name: str, svc: ContainerService = Depends(service), _t: TokenInfo = Depends(require_action)) -> dict:
    return await audited(svc, request, "start", id_or_name, _act(svc, container_ref(id_or_name), "start"))


@router.post("/containers/{id_or_name}/stop", summary="Stop a container (SIGTERM, then SIGKILL after timeout_s)")
@router.post("/containers/{id_or_name}/restart", summary="Restart a container (stop as above, then start)")
async def stop_or_restart(
    request: Request,
    id_or_name: str,
    timeout_s: int | None = Query(default=None, ge=0, le=3600),
    svc: ContainerService = Depends(service),
    _t: TokenInfo = Depends(require_action),
) -> dict:
    action = request.url.path.rsplit("/", 1)[-1]
    return await audited(svc, request, action, id_or_name, _act(svc, container_ref(id_or_name), action, timeout_s=timeout_s))


@router.post("/containers/{id_or_name}/remove", summary="Remove a container; a running one only with force=true")
async def remove(
    request: Request, id_or_name: str, force: bool = False, svc: ContainerService = Depends(service), _t: TokenInfo = Depends(require_action)
) -> dict:
    return await audited(svc, request, "remove", id_or_name, _act(svc, container_ref(id_or_name), "remove", force=force), detail="force" if force else None)


@router.get("/containers/{id_or_name}/logs", summary="The last `tail` log lines, stdout and stderr marked")
async def get_logs(
    id_or_name: str,
    tail: int = Query(default=100, ge=0, le=container_logs.MAX_TAIL),
    svc: ContainerService = Depends(service),
    _t: TokenInfo = Depends(require_action),
) -> dict:
    ref = container_ref(id_or_name)
    try:
        return {"container": ref, "lines": await container_logs.tail(svc.engine, ref, tail)}
    except EngineError as exc:
        raise engine_error(exc) from None


@router.get("/audit", summary="The last `limit` audited actions, oldest first")
async def audit(limit: int = Query(default=100, ge=1, le=10_000), svc: ContainerService = Depends(service), _t: TokenInfo = Depends(require_control)) -> dict:
    return {"entries": svc.audit.tail(limit)}


async def _deny(ws: WebSocket, status: int, code: str, detail: str) -> None:
    await deny(ws, ApiError(status, code, detail))


@router.websocket("/containers/{id_or_name}/logs/stream")
@stream_endpoint("control")  # the same token check, failure limit and stream cap as /stream
async def follow_logs(ws: WebSocket, id_or_name: str) -> None:
    """Frames: ``log`` per line, then ``log_end``; closes with CLOSE_LOG_END when the container stops."""
    agent: Agent = ws.app.state.agent
    if not agent.settings.control_enabled:
        return await _deny(ws, 403, "control_disabled", CONTROL_OFF)
    svc = agent.container_service
    if svc is None:
        return await _deny(ws, 503, "containers_disabled", "container support is switched off on this agent")
    try:
        ref = check_ref(id_or_name)
        tail = int(ws.query_params.get("tail", "100"))
        if not 0 <= tail <= container_logs.MAX_TAIL:
            raise ValueError
    except (BadReference, ValueError):
        return await _deny(ws, 400, "bad_request", f"bad container reference or tail (0..{container_logs.MAX_TAIL})")
    try:
        info = await svc.engine.call("GET", f"containers/{ref}/json")
    except EngineError as exc:
        err = engine_error(exc)
        return await _deny(ws, err.status_code, err.code, str(err.detail))
    await ws.accept()
    listener = asyncio.create_task(_until_disconnect(ws))
    pump = asyncio.create_task(_pump_logs(ws, svc, info["Id"], tail))
    done, _ = await asyncio.wait({listener, pump}, return_when=asyncio.FIRST_COMPLETED)
    for task in (listener, pump):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _until_disconnect(ws: WebSocket) -> None:
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass  # client messages carry no meaning on this stream


async def _pump_logs(ws: WebSocket, svc: ContainerService, cid: str, tail: int) -> None:
    try:
        async for line in container_logs.follow(svc.engine, cid, tail):
            await ws.send_text(encode(frame("log", **line)))
        try:
            state = (await svc.engine.call("GET", f"containers/{cid}/json")).get("State") or {}
        except EngineError:
            state = {}
        await ws.send_text(encode(frame("log_end", reason="container stopped", exit_code=state.get("ExitCode"))))
        await ws.close(CLOSE_LOG_END, "container stopped")
    except EngineError as exc:
        with contextlib.suppress(Exception):
            await ws.send_text(error_frame("engine_error", exc.message))
            await ws.close(CLOSE_ENGINE_ERROR, "engine error")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
