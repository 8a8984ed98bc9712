"""Host-header check (DNS-rebinding defence) and security headers, as ASGI middleware.

A browser page on an attacker's domain can resolve that domain to 127.0.0.1 and
then talk to a loopback service; the Host header still carries the attacker's
name, so only names we expect are served. IP literals cannot be rebound and are
always accepted. There is no CORS: no Access-Control-* header is ever sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any

from agent.api.errors import ApiError

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8611
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.rsplit(":", 1)[0]
    return header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class _BodyTooLarge(ApiError):
    """An HTTPException, so FastAPI's body parsing re-raises it and the error handler answers 413."""

    def __init__(self, limit: int):
        super().__init__(413, "too_large", f"request body over {limit} bytes")


async def _send_json(send: Any, status: int, payload: dict) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


class HostGuard:
    """Host-header check, request body limit and security headers."""

    def __init__(self, app: Any, *, bound_host: str, allowed: Iterable[str] = (), max_body_bytes: int = 1024 * 1024):
        self.app = app
        self.max_body_bytes = max_body_bytes
        hostname = socket.gethostname().lower()
        self.allowed = {"localhost", hostname, f"{hostname}.local", bound_host.lower().strip("[]")} | {a.lower() for a in allowed}

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        name = _host_name(header).rstrip(".")
        return name in self.allowed or _is_ip(name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.accepts(host):
            bad_host = {"error": "bad_host", "detail": "Host header not accepted; add the name to allowed_hosts in the agent's config"}
            if scope["type"] == "websocket":
                if "websocket.http.response" in scope.get("extensions", {}):
                    await send({"type": "websocket.http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "websocket.http.response.body", "body": json.dumps(bad_host).encode()})
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
            return await _send_json(send, 400, bad_host)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        too_large = {"error": "too_large", "detail": f"request body over {self.max_body_bytes} bytes"}
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            return await _send_json(
                send, 413 if length.isdigit() else 400, too_large if length.isdigit() else {"error": "bad_request", "detail": "bad Content-Length"}
            )
        api = not scope.get("path", "").startswith(("/docs", "/openapi.json"))
        started = False
        received = 0

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # chunked bodies carry no Content-Length
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = SECURITY_HEADERS + ([API_CSP] if api else [])
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, too_large)
        except asyncio.CancelledError:
            # uvicorn cancels requests still running when its graceful shutdown times out
            # (e.g. a container stop with a long grace period): answer instead of a traceback.
            if not started:
                await _send_json(send, 503, {"error": "shutting_down", "detail": "the agent is shutting down; the engine finishes the action by itself"})
