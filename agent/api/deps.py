"""What the routers share: authentication for HTTP routes and WebSocket handshakes, and
the control-route pieces (the container service, the control gate, the audit wrapper, the
engine-error mapping) that the containers, models, alerts and processes routers all use.

Missing/invalid token -> 401; a valid token lacking the scope -> 403; too many
failed attempts from one address -> 429 with Retry-After, for failures only: every
client arrives from 127.0.0.1 through SSH tunnels, so a limit checked before the
token would let any local process lock everyone out.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.errors import ApiError, error_body
from agent.auth import Scope, TokenInfo, bearer_token
from agent.containers.actions import BadReference, check_ref
from agent.containers.engine import EngineError, EngineUnavailable
from agent.containers.service import ContainerService
from agent.ratelog import RateLimitedLog
from agent.runtime import Agent

log = logging.getLogger("sparkdeck.api")
# one line per refused handshake at most, and at most this many a minute: refusals are
# what a hostile local process can produce at will
_refusals = RateLimitedLog(log, period_s=60.0, burst=10)

_bearer = HTTPBearer(auto_error=False, description="a sparkdeck token (`sparkdeck-agent token add NAME`)")


def get_agent(request: Request) -> Agent:
    return request.app.state.agent


def authenticate(agent: Agent, token: str | None, addr: str, scope: Scope) -> TokenInfo:
    """The token's identity, or an ApiError (401, 403 or 429) to answer with."""
    info = agent.tokens.verify(token)
    if info is None:
        wait = agent.auth_limiter.retry_after(addr)
        if wait is not None:
            raise ApiError(429, "rate_limited", f"too many failed authentications; retry in {wait}s", headers={"Retry-After": str(wait)})
        agent.auth_limiter.failed(addr)
        raise ApiError(401, "unauthorized", "missing or invalid token (send Authorization: Bearer ...)", headers={"WWW-Authenticate": "Bearer"})
    if not info.allows(scope):
        raise ApiError(403, "forbidden", f"this needs a {scope} token; this one is {info.scope}")
    return info


def require(scope: Scope) -> Callable[..., TokenInfo]:
    def check(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> TokenInfo:
        addr = request.client.host if request.client else "?"
        info = authenticate(request.app.state.agent, creds.credentials if creds else None, addr, scope)
        request.state.token = info
        return info

    return check


require_read = require("read")
require_control = require("control")


async def authenticate_ws(ws: WebSocket, scope: Scope) -> TokenInfo | None:
    """Authenticate a WebSocket handshake; on failure answer it with the HTTP error and return None."""
    addr = ws.client.host if ws.client else "?"
    try:
        return authenticate(ws.app.state.agent, bearer_token(ws.headers.get("authorization")), addr, scope)
    except ApiError as err:
        await deny(ws, err)
        return None


async def deny(ws: WebSocket, err: ApiError) -> None:
    """Refuse a WebSocket handshake with a real HTTP status and a JSON body (one rate-limited log line)."""
    _refusals.log(logging.INFO, "refused WebSocket %s from %s: %d %s", ws.url.path, peer(ws), err.status_code, err.code)
    await ws.send_denial_response(JSONResponse(error_body(err.status_code, err.code, err.detail), status_code=err.status_code, headers=err.headers))


class StreamSlots:
    """Open WebSocket streams per token name, capped (``max_streams_per_token``).

    A slot is taken in the same step as the check (no await between them), so a burst of
    concurrent handshakes cannot overshoot the cap.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, name: str) -> bool:
        if self.open.get(name, 0) >= self.limit:
            return False
        self.open[name] = self.open.get(name, 0) + 1
        return True

    def give_back(self, name: str) -> None:
        left = self.open.get(name, 0) - 1
        if left > 0:
            self.open[name] = left
        else:
            self.open.pop(name, None)


def stream_endpoint(scope: Scope) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """Decorate a WebSocket route: authenticate the handshake and hold one of the token's
    stream slots while the route runs; the route finds the token with ``stream_token(ws)``."""

    def wrap(route: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(route)  # FastAPI reads the route's own signature through __wrapped__
        async def endpoint(**kwargs: Any) -> None:
            ws: WebSocket = kwargs["ws"]
            token = await authenticate_ws(ws, scope)
            if token is None:
                return
            slots: StreamSlots = ws.app.state.stream_slots
            if not slots.take(token.name):
                return await deny(
                    ws,
                    ApiError(
                        429, "too_many_streams", f"this token already has {slots.limit} open streams (max_streams_per_token); close one or use another token"
                    ),
                )
            ws.state.token = token
            try:
                await route(**kwargs)
            finally:
                slots.give_back(token.name)

        return endpoint

    return wrap


def stream_token(ws: WebSocket) -> TokenInfo:
    return ws.state.token


def peer(conn: Request | WebSocket) -> str:
    """``host:port`` of the client, for logs and the audit log."""
    return f"{conn.client.host}:{conn.client.port}" if conn.client else "?"


# ---- control routes -------------------------------------------------------------------

CONTROL_OFF = "control actions are switched off on this agent (control_enabled = false in its config)"


def service(agent: Agent = Depends(get_agent)) -> ContainerService:
    if agent.container_service is None:
        raise ApiError(503, "containers_disabled", "container support is switched off on this agent (containers = false)")
    return agent.container_service


def require_action(request: Request, token: TokenInfo = Depends(require_control)) -> TokenInfo:
    if not request.app.state.agent.settings.control_enabled:
        raise ApiError(403, "control_disabled", CONTROL_OFF)
    return token


def engine_error(exc: EngineError) -> ApiError:
    """The engine's own message, with an HTTP status that says whose fault it is."""
    if isinstance(exc, EngineUnavailable):
        return ApiError(503, "engine_unavailable", f"{exc.message}; {exc.fix}" if exc.fix else exc.message)
    if exc.status in (400, 404, 409):
        return ApiError(exc.status, {400: "bad_request", 404: "not_found", 409: "conflict"}[exc.status], exc.message)
    if exc.status == 504:
        return ApiError(504, "engine_timeout", exc.message)
    return ApiError(502, "engine_error", f"the Docker engine answered: {exc.message}")


def container_ref(id_or_name: str) -> str:
    """A container id or name from a path, checked (400 ``bad_container`` otherwise)."""
    try:
        return check_ref(id_or_name)
    except BadReference as exc:
        raise ApiError(400, "bad_container", str(exc)) from None


async def audited(svc: ContainerService, request: Request, action: str, target: str, work: Awaitable[Any], detail: str | None = None) -> Any:
    """Run an action and append its outcome to the audit log, whatever it is."""
    token: TokenInfo = request.state.token
    try:
        result = await work
    except ApiError as exc:
        svc.audit.append(token=token.name, client=peer(request), action=action, target=target, result=f"error: {exc.code}", detail=detail)
        raise
    except BaseException:
        svc.audit.append(token=token.name, client=peer(request), action=action, target=target, result="error: internal", detail=detail)
        raise
    svc.audit.append(token=token.name, client=peer(request), action=action, target=target, result="ok", detail=detail)
    return result
