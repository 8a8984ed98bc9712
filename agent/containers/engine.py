"""One connection to the Docker Engine API (or Podman's Docker-compatible socket).

Everything that talks to the engine goes through ``Engine``: one HTTP/1.1
request per connection over the unix socket (or ``tcp://`` from DOCKER_HOST),
parsed with h11 — which uvicorn already loads — instead of aiohttp/aiodocker,
whose import alone cost the agent about 10 MB of RSS (bench/README.md). The
agent makes a request every few seconds and holds one event stream, so a
connection pool would buy nothing. Connection failures become a status with
a fix; a missing socket at start-up is not fatal.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import h11

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
        return (
            f"no Docker engine socket at {where}",
            "install and start Docker (sudo systemctl start docker), or set DOCKER_HOST (or docker_host in the config) to its address",
        )
    return (f"cannot reach the Docker engine at {where}: {detail}", "check that dockerd is running (sudo systemctl status docker)")


class Engine:
    def __init__(self, url: str | None = None):
        self.url = engine_url(url)

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        return EngineUnavailable(*unavailable_reason(self.url, f"{type(exc).__name__}: {exc}"))

    async def close(self) -> None:
        """Nothing is held between requests; kept so owners can close what they open."""

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(self.url)
        try:
            if parts.scheme == "unix":
                return await asyncio.open_unix_connection(self.url.removeprefix("unix://"))
            if parts.scheme in ("tcp", "http") and parts.hostname:
                return await asyncio.open_connection(parts.hostname, parts.port or 2375)
        except OSError as exc:
            raise self._unavailable(exc) from None
        raise EngineUnavailable(f"unsupported Docker engine address {self.url}", "use unix:///var/run/docker.sock or tcp://HOST:PORT")

    async def _open(
        self, method: str, path: str, params: dict | None, body: str | bytes | None
    ) -> tuple[h11.Connection, asyncio.StreamReader, asyncio.StreamWriter, h11.Response]:
        """Send the request and read the response head; a 4xx/5xx becomes EngineError."""
        reader, writer = await self._connect()
        conn = h11.Connection(h11.CLIENT)
        target = "/" + path.lstrip("/") + ("?" + urlencode(params) if params else "")
        data = body.encode() if isinstance(body, str) else body
        headers = [("Host", "docker"), ("User-Agent", "sparkdeck-agent"), ("Connection", "close")]
        if data is not None:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        try:
            out = conn.send(h11.Request(method=method, target=target, headers=headers))
            if data is not None:
                out += conn.send(h11.Data(data=data))
            out += conn.send(h11.EndOfMessage())
            writer.write(out)
            await writer.drain()
            while True:
                event = await _next_event(conn, reader)
                if isinstance(event, h11.Response):
                    break
            if event.status_code >= 400:
                raw = b"".join([e.data async for e in _body(conn, reader)])
                raise EngineError(event.status_code, _message(raw, event.status_code))
            return conn, reader, writer, event
        except BaseException:
            writer.close()
            raise

    async def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None, timeout_s: float | None = None) -> Any:
        """One request; the parsed JSON answer ('' for an empty one). Raises EngineError."""

        async def run() -> Any:
            conn, reader, writer, _ = await self._open(method, path, params, body)
            try:
                raw = b"".join([e.data async for e in _body(conn, reader)])
            finally:
                writer.close()
            return json.loads(raw) if raw.strip() else ""

        try:
            return await asyncio.wait_for(run(), timeout_s or REQUEST_TIMEOUT_S)
        except EngineError:
            raise
        except TimeoutError:
            raise _no_answer() from None
        except (OSError, h11.ProtocolError, ValueError) as exc:
            raise self._unavailable(exc) from None

    async def ping(self) -> None:
        await self.call("GET", "version", timeout_s=5)

    async def stream_raw(self, path: str, *, params: dict | None = None, method: str = "GET") -> AsyncIterator[bytes]:
        """A long-lived byte stream (container logs, events, pull progress), as the engine sends it."""
        try:
            conn, reader, writer, _ = await asyncio.wait_for(self._open(method, path, params, None), REQUEST_TIMEOUT_S)
        except TimeoutError:
            raise _no_answer() from None
        except (OSError, h11.ProtocolError) as exc:
            raise self._unavailable(exc) from None
        try:
            async for event in _body(conn, reader):
                yield event.data
        except (OSError, h11.ProtocolError) as exc:
            raise self._unavailable(exc) from None
        finally:
            writer.close()

    async def stream_lines(self, method: str, path: str, *, params: dict | None = None) -> AsyncIterator[dict]:
        """A streaming JSON-lines endpoint (events, image pull progress), one object per item."""
        buf = b""
        async for chunk in self.stream_raw(path, params=params, method=method):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
        if buf.strip():
            yield json.loads(buf)


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    eof = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            if eof:  # dockerd restarting, or not an engine at all
                raise ConnectionResetError("the engine closed the connection without a complete answer") from None
            raise
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            eof = not data
            conn.receive_data(data)  # b"" at EOF: h11 then says whether that was allowed
            continue
        return event


async def _body(conn: h11.Connection, reader: asyncio.StreamReader) -> AsyncIterator[h11.Data]:
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            yield event
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return


def _message(raw: bytes, status: int) -> str:
    try:
        return str(json.loads(raw).get("message", "")).strip() or f"HTTP {status}"
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace").strip() or f"HTTP {status}"


def _no_answer() -> EngineError:
    return EngineError(504, "the Docker engine did not answer in time")
