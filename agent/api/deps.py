"""Authentication for HTTP routes and WebSocket handshakes, in one place.

Missing/invalid token -> 401; a valid token lacking the scope -> 403; too many
failed attempts from one address -> 429 with Retry-After.
"""

from __future__ import annotations

from typing import Callable

from fastapi import Depends, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.errors import ApiError, error_body
from agent.auth import Scope, TokenInfo, bearer_token
from agent.runtime import Agent

_bearer = HTTPBearer(auto_error=False, description="a sparkdeck token (`sparkdeck-agent token add NAME`)")


def get_agent(request: Request) -> Agent:
    return request.app.state.agent


def authenticate(agent: Agent, token: str | None, addr: str, scope: Scope) -> TokenInfo:
    """The token's identity, or an ApiError (401, 403 or 429) to answer with."""
    wait = agent.auth_limiter.retry_after(addr)
    if wait is not None:
        raise ApiError(429, "rate_limited", f"too many failed authentications; retry in {wait}s", headers={"Retry-After": str(wait)})
    info = agent.tokens.verify(token)
    if info is None:
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
    """Refuse a WebSocket handshake with a real HTTP status and a JSON body."""
    await ws.send_denial_response(JSONResponse(error_body(err.status_code, err.code, err.detail), status_code=err.status_code, headers=err.headers))
