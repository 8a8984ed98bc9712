"""The FastAPI application: routers, error handlers, host guard, lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from agent import __version__
from agent.api import alerts, containers, errors, history, incidents, metrics, models, processes, rest, stream
from agent.api.deps import StreamSlots
from agent.api.security import HostGuard
from agent.runtime import Agent


def create_app(agent: Agent) -> FastAPI:
    """Build the ASGI app for a configured agent; the agent starts with the app's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await agent.start()
        try:
            yield
        finally:
            await agent.stop()

    app = FastAPI(
        title="sparkdeck agent",
        version=__version__,
        description="Telemetry and control for NVIDIA GPU workstations. Stream: WebSocket /api/v1/stream (see docs/protocol.md).",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.agent = agent
    app.state.stream_slots = StreamSlots(agent.settings.max_streams_per_token)
    errors.install(app)
    app.include_router(rest.router)
    app.include_router(stream.router)
    app.include_router(containers.router)
    app.include_router(models.router)
    app.include_router(history.router)
    app.include_router(incidents.router)
    app.include_router(processes.router)
    app.include_router(metrics.router)
    app.include_router(alerts.router)
    app.add_middleware(HostGuard, bound_host=agent.settings.host, allowed=agent.settings.allowed_hosts, max_body_bytes=agent.settings.max_body_bytes)
    return app
