"""Auth dependencies: 401 without a valid token, 403 when its scope is too small."""

from __future__ import annotations

from typing import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.errors import ApiError
from agent.auth import Scope, TokenInfo
from agent.runtime import Agent

_bearer = HTTPBearer(auto_error=False, description="a sparkdeck token (`sparkdeck-agent token add NAME`)")


def get_agent(request: Request) -> Agent:
    return request.app.state.agent


def require(scope: Scope) -> Callable[..., TokenInfo]:
    def check(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> TokenInfo:
        agent: Agent = request.app.state.agent
        info = agent.tokens.verify(creds.credentials if creds else None)
        if info is None:
            raise ApiError(401, "unauthorized", "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})
        if not info.allows(scope):
            raise ApiError(403, "forbidden", f"this needs a {scope} token; this one is {info.scope}")
        request.state.token = info
        return info

    return check


require_read = require("read")
require_control = require("control")
