"""GPU processes: GET /api/v1/processes (read), POST /api/v1/processes/{pid}/signal (control, audited)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Path, Request

from agent.api.deps import get_agent, peer, require_action, require_read
from agent.api.errors import ApiError
from agent.auth import TokenInfo
from agent.processes.service import NotGpuProcess, NotPermitted, PidChanged, ProcessService
from agent.protocol import ProcessList, SignalRequest, SignalResult
from agent.runtime import Agent

log = logging.getLogger("sparkdeck.processes")

router = APIRouter(prefix="/api/v1", tags=["processes"])


def service(agent: Agent = Depends(get_agent)) -> ProcessService:
    return agent.processes


@router.get(
    "/processes",
    summary="GPU compute processes with owner, command, container, GPU memory, CPU and RSS",
    dependencies=[Depends(require_read)],
    response_model=ProcessList,
)
async def list_processes(svc: ProcessService = Depends(service)) -> dict:
    return await svc.listing()


@router.post("/processes/{pid}/signal", summary="Signal a GPU process (TERM, KILL or INT) and say whether it exited", response_model=SignalResult)
async def signal_process(
    request: Request,
    body: SignalRequest,
    pid: int = Path(ge=1, le=2**22),
    agent: Agent = Depends(get_agent),
    svc: ProcessService = Depends(service),
    token: TokenInfo = Depends(require_action),
) -> dict:
    audit = agent.guard.audit  # the one audit log (the memory guard's is the container service's when it runs)

    def record(result: str, detail: str | None = None) -> None:
        if audit is not None:
            audit.append(token=token.name, client=peer(request), action=f"signal {body.signal}", target=f"pid {pid}", result=result, detail=detail)

    try:
        svc.check_listed(pid)  # before anything about the pid is read: an unlisted one is left alone
    except NotGpuProcess as exc:
        record("error: not_a_gpu_process")
        raise ApiError(404, "not_a_gpu_process", str(exc)) from None
    what = await asyncio.to_thread(svc.describe, pid)  # /proc reads and a passwd lookup: off the loop
    detail = " ".join(x for x in (f"container {what['container']['name']}" if what["container"] else "", what["command"] or "") if x) or None
    try:
        answer = await svc.send(pid, body.signal, wait_s=body.wait_s, start_time=body.start_time)
    except NotGpuProcess as exc:  # it left the list while we looked
        record("error: not_a_gpu_process", detail)
        raise ApiError(404, "not_a_gpu_process", str(exc)) from None
    except PidChanged as exc:
        record("error: pid_changed", detail)
        raise ApiError(409, "pid_changed", str(exc)) from None
    except NotPermitted as exc:
        record("error: not_permitted", detail)
        raise ApiError(403, "not_permitted", exc.message) from None
    except BaseException:
        record("error: internal")
        raise
    try:
        record(answer["result"], detail)
    except OSError as exc:  # the signal was sent: say so, and log that the audit line was lost
        log.error("audit log: could not record a sent signal (%s)", exc)
    return answer
