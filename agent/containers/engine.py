"""One connection to the Docker Engine API (or Podman's Docker-compatible socket).

Everything that talks to the engine goes through ``Engine``: it builds the
aiodocker client lazily (a missing socket at start-up is not fatal), turns
connection failures into a status with a fix, and keeps the few raw API calls
aiodocker has no public helper for (event and log streams) in one place.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, AsyncIterator

DEFAULT_SOCKET = "/var/run/docker.sock"
REQUEST_TIMEOUT_S = 30.0


class EngineError(Exception):
    """An engine answer or a failure to reach it; ``status`` follows HTTP (900 = unreachable)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class EngineUnavailable(EngineError):
    def __init__(self, message: str, fix: str | None):
        super().__init__(900, message)
        self.fix = fix


def engine_url(configured: str | None = None) -> str:
    """The setting, else $DOCKER_HOST, else the default socket."""
    return configured or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def unavailable_reason(url: str, detail: str) -> tuple[str, str | None]:
    """(message, fix) for an engine we cannot reach; ``detail`` is the connection error's text."""
    low = detail.lower()
    where = url.removeprefix("unix://")
    if "permission denied" in low or "errno 13" in low:
        return (
            f"permission denied on the Docker socket {where}",
            "add the agent's user to the docker group (sudo usermod -aG docker USER), then restart the agent",
        )
    if "no such file" in low or "errno 2" in low or "missing valid docker_host" in low:
        return (f"no Docker engine socket at {where}", "install and start Docker (sudo systemctl start docker), or set DOCKER_HOST")
    if "aiodocker" in low:
        return ("the aiodocker package is not installed", "pip install aiodocker")
    return (f"cannot reach the Docker engine at {where}: {detail}", "check that dockerd is running (sudo systemctl status docker)")


class Engine:
    def __init__(self, url: str | None = None):
        self.url = engine_url(url)
        self._docker: Any = None

    def _client(self) -> Any:
        if self._docker is None:
            try:
                import aiodocker
                import aiohttp
            except ImportError:
                raise EngineUnavailable(*unavailable_reason(self.url, "aiodocker missing")) from None
            try:
                self._docker = aiodocker.Docker(url=self.url, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
            except (ValueError, OSError) as exc:
                raise EngineUnavailable(*unavailable_reason(self.url, str(exc))) from None
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            try:
                await docker.close()
            except Exception:
                pass

    def _wrap(self, exc: BaseException) -> EngineError:
        from aiodocker.exceptions import DockerError

        if isinstance(exc, EngineError):
            return exc
        if isinstance(exc, DockerError):
            if exc.status == 900:
                return EngineUnavailable(*unavailable_reason(self.url, exc.message))
            return EngineError(exc.status, str(exc.message).strip())
        if isinstance(exc, asyncio.TimeoutError):
            return EngineError(504, "the Docker engine did not answer in time")
        return EngineUnavailable(*unavailable_reason(self.url, f"{type(exc).__name__}: {exc}"))

    async def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None, timeout_s: float | None = None) -> Any:
        """One request; the parsed JSON answer ('' for an empty one). Raises EngineError."""
        docker = self._client()
        import aiohttp  # present whenever aiodocker is

        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else None
        try:
            kw: dict[str, Any] = {"params": params, "data": body}
            if timeout is not None:
                kw["timeout"] = timeout
            return await docker._query_json(path, method, **kw)
        except Exception as exc:
            raise self._wrap(exc) from None

    async def ping(self) -> None:
        await self.call("GET", "version", timeout_s=5)

    async def stream_lines(self, method: str, path: str, *, params: dict | None = None) -> AsyncIterator[dict]:
        """A streaming JSON-lines endpoint (events, image pull progress), one object per item."""
        docker = self._client()
        import aiohttp

        try:
            async with docker._query(path, method, params=params, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
                if buf.strip():
                    yield json.loads(buf)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise self._wrap(exc) from None

    async def stream_raw(self, path: str, *, params: dict | None = None) -> AsyncIterator[bytes]:
        """A raw byte stream (container logs)."""
        docker = self._client()
        import aiohttp

        try:
            async with docker._query(path, "GET", params=params, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
                async for chunk in resp.content.iter_any():
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise self._wrap(exc) from None
