"""Every error answer is JSON: ``{"error": code, "detail": message}``; never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("sparkdeck.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(StarletteHTTPException):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, extra: dict | None = None):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.code = code
        self.extra = extra  # more fields beside error and detail (e.g. insufficient_memory's figures)


def error_body(status: int, code: str | None, detail: object) -> dict:
    return {"error": code or _CODES.get(status, "error"), "detail": detail}


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None)
        body = {**(getattr(exc, "extra", None) or {}), **error_body(exc.status_code, code, exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "invalid")} for e in exc.errors()[:10]]
        return JSONResponse(error_body(422, "invalid", problems), status_code=422)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s: %r", request.method, request.url.path, exc, exc_info=exc)
        return JSONResponse(error_body(500, "internal", "internal error; see the agent's log"), status_code=500)
