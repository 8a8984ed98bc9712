"""uvicorn's h11 protocol with the two bounds it lacks: a header deadline and a connection cap.

Checked against uvicorn 0.54 with real sockets (tests/faults/test_hostile_clients.py):

- ``timeout_keep_alive`` is armed only after a response, so a socket that connects and
  sends nothing, or sends a request header one line every few seconds (slowloris), stays
  open for ever. Here every connection must complete its request headers within
  ``HEADER_TIMEOUT_S`` of connecting (or of its previous response), else it is closed.
- a malformed request or an unknown ``Upgrade`` writes a WARNING line each, as fast as a
  client sends them: here at most 10 of each a minute.
- ``limit_concurrency`` answers 503 in plain text and is checked after the WebSocket
  upgrade has been handed off, so it never caps streams. Here a connection that finds
  ``max_connections`` already open is answered with a JSON 503 and closed (streams
  included: a WebSocket handshake gets the same answer).

The h11 protocol is named explicitly (not "auto"), so installing httptools changes nothing.
"""

from __future__ import annotations

import json
import logging
from asyncio import TimerHandle
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.ratelog import ThrottleFilter

HEADER_TIMEOUT_S = 10.0  # a whole request header, from connect (or the previous response)
KEEPALIVE_S = 5  # whole seconds (uvicorn types it int); an idle keep-alive connection is closed after this (uvicorn's timeout_keep_alive)

_FULL = json.dumps({"error": "too_many_connections", "detail": "the agent has max_connections connections open; retry later"}).encode()


# uvicorn's own lines for bad requests, under a child of its logger so they keep its level
_log = logging.getLogger("uvicorn.error.http")
_log.addFilter(ThrottleFilter({"Invalid HTTP request received.", "Unsupported upgrade request."}))


async def _too_many_connections(scope: dict, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"), (b"retry-after", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": _FULL})


class GuardedH11Protocol(H11Protocol):
    max_connections = 1024  # set from the settings by agent.server.build_server

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _log

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.over_cap = len(self.connections) > self.max_connections
        if self.over_cap:
            self.app = _too_many_connections  # answer whatever it asks, then close
        self.header_timer: TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self.header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_timeout(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()  # headers not complete in time: nothing sensible to answer

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request's headers have been parsed
            self._disarm_header_timer()

    def _should_upgrade(self) -> bool:
        # over the cap, a WebSocket handshake is answered as plain HTTP: the JSON 503
        return not self.over_cap and super()._should_upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)
