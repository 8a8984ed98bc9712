"""A unix-socket proxy in front of the real Docker engine that can cut a followed log stream mid-answer.

Everything passes through unchanged; a ``GET …/logs?…follow=1`` answer is forwarded until ``cut_logs``
is set, then its connection is dropped without the final chunk: to the agent, the engine failed
mid-stream (what a dockerd crash looks like), while every other request still reaches the engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

REAL_SOCKET = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")


class EngineProxy:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cut_logs = asyncio.Event()
        self.logs_followed = 0  # log streams seen, so a test knows its stream went through here
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    async def __aenter__(self) -> EngineProxy:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_w.close()
            return
        line = head.split(b"\r\n", 1)[0]
        follows_logs = line.startswith(b"GET ") and b"/logs?" in line and b"follow=1" in line
        engine_r, engine_w = await asyncio.open_unix_connection(REAL_SOCKET)
        engine_w.write(head)
        up = asyncio.create_task(self._pipe(client_r, engine_w))
        if follows_logs:
            self.logs_followed += 1
            down = asyncio.create_task(self._pipe(engine_r, client_w))
            await asyncio.wait({down, asyncio.create_task(self.cut_logs.wait())}, return_when=asyncio.FIRST_COMPLETED)
            down.cancel()
        else:
            await self._pipe(engine_r, client_w)
        up.cancel()
        for w in (client_w, engine_w):
            if follows_logs and w is client_w and w.transport is not None:
                w.transport.abort()  # no final chunk, no orderly close: the answer just stops
            else:
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
