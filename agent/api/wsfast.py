"""Send one pre-framed WebSocket message to many clients: "encode once" down to the wire bytes.

A server's frames are not masked, so a text message is the same bytes for every
client. Through ASGI each send is re-encoded, re-framed and walks the middleware
stack (~70 µs a client in the 500-client profile in bench/README.md); here the
frame is built once per snapshot and each client costs one ``transport.write``.

``FanoutWebSocketProtocol`` is uvicorn's websockets-sansio protocol plus an ASGI
scope extension, ``sparkdeck.send_frame``, that honours the same flow control
as uvicorn's own ``send`` (it waits while the transport is paused). The stream
falls back to the plain ASGI send wherever the extension is absent.

It also mends three things in uvicorn's protocol that a hostile client can use:

- a refused handshake wrote three log lines, one at ERROR ("ASGI callable returned
  without completing handshake"): the route logs one rate-limited line (agent.api.deps)
  and the protocol none;
- a close frame (1008, or 1009 from the parser) waited for a paused transport, and the socket was closed 10 s later
  even if the close frame still sat unsent behind frames the client had not read; when
  the client kept sending, that close() answered with a RST and the close frame was
  lost. Now the close frame is queued at once (``close_now``), and the socket is closed
  only when the peer answers, or the kernel has delivered everything, or ``LINGER_S``
  has passed;
- a keepalive time-out on a client that reads nothing left the socket waiting forever
  for its buffer to drain: it is aborted after ``LINGER_S``.
"""

from __future__ import annotations

import array
import fcntl
import logging
import struct
import termios

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "sparkdeck.send_frame"
LINGER_S = 20.0  # longest a closing connection is kept for its close frame to be read
LINGER_READ_BYTES = 1 << 20  # read (and discard) at most this much after our close, then stop reading
_POLL_S = 0.25

# uvicorn's and websockets' own lines for a handshake answered with an HTTP status
_REFUSAL_LINES = {'%s - "WebSocket %s" %d', '%s - "WebSocket %s" 403', "connection rejected (%d %s)", "HTTP response sent (%d %s)"}


class _DropRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _REFUSAL_LINES


_log = logging.getLogger("uvicorn.error.ws")
_log.addFilter(_DropRefusals())


def unsent_bytes(transport) -> int:
    """Bytes not yet delivered to the peer: asyncio's buffer plus the kernel's send queue (unacked)."""
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None:
        return queued
    out = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, out)
    except (OSError, ValueError):
        return queued
    return queued + out[0]


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455 §5.2) carrying ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class WireCache:
    """The wire bytes of the latest frame: built for the first client, reused for the rest."""

    seq = -1
    wire = b""

    @classmethod
    def get(cls, seq: int, text: str) -> bytes:
        if seq != cls.seq:
            cls.seq, cls.wire = seq, text_frame(text.encode())
        return cls.wire


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _log
        self.conn.logger = _log
        self.linger_started = self.linger_deadline = 0.0
        self.linger_read = 0

    # A WebSocket-level ping is answered by the protocol itself, written past the flow control
    # that every other send honours: a peer that sends pings and never reads would grow the
    # transport's buffer by a pong per ping. Once the buffer is over its high-water mark, a ping
    # stops reading from that peer until its buffer drains (at most one read's worth of pongs).
    _ping_paused = False

    def handle_ping(self) -> None:
        super().handle_ping()
        if not self.writable.is_set() and not self._ping_paused:
            self._ping_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._ping_paused:
            self._ping_paused = False
            if not self.read_paused:
                self.transport.resume_reading()

    async def receive(self):
        message = await super().receive()  # resumes reading once the app took the last message...
        if self._ping_paused and not self.transport.is_closing():
            self.transport.pause_reading()  # ...but not while pongs wait for a peer that does not read
        return message

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        if hasattr(self, "scope"):  # absent when websockets itself refused the request
            self.scope["extensions"][EXTENSION] = {"send": self.send_frame, "write_now": self.write_now, "close_now": self.close_now}

    async def send(self, message) -> None:
        if message["type"] == "websocket.close" and self.handshake_complete and self.initial_response is None:
            self.close_now(message.get("code", 1000), message.get("reason", "") or "")
            return
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True  # answered with a status: uvicorn would log an ERROR otherwise

    def close_now(self, code: int, reason: str = "") -> None:
        """Queue a close frame now, even while the transport is paused (a flooding client that
        reads slowly must still get it); later calls and sends are no-ops."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._linger()

    def handle_parser_exception(self) -> None:
        """A bad frame (1009 for one over ``max_message_bytes``, 1002 …): uvicorn closes the
        socket at once, while the rest of the message is still arriving; linger instead."""
        if self.close_sent:  # called again for each later chunk: already lingering
            return
        if not self.handshake_complete:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        close = self.conn.close_sent
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code if close else 1006, "reason": close.reason if close else ""})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if not self.transport.can_write_eof():  # TLS: no half-close, so uvicorn's immediate close
            self.transport.close()
            return
        # the parser now discards everything, the peer's close reply included: end our side
        # with a FIN after the close frame, as websockets asks, and wait for the peer's
        self.transport.write_eof()
        self._linger()

    def _linger(self) -> None:
        if self.read_paused:  # keep reading (and discarding) so the peer's close reply is seen
            self.read_paused = False
            self.transport.resume_reading()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.linger_started = self.loop.time()
        self.linger_deadline = self.linger_started + LINGER_S
        self.close_timer = self.loop.call_later(_POLL_S, self._close_when_delivered)

    def data_received(self, data: bytes) -> None:
        if self.close_sent and self.linger_started:
            self.linger_read += len(data)
            if self.linger_read > LINGER_READ_BYTES and not self.read_paused:
                # a peer that keeps sending after our close costs a core to read; let TCP hold it back
                self.read_paused = True
                self.transport.pause_reading()
        super().data_received(data)

    def _close_when_delivered(self) -> None:
        """Close once the peer has everything we sent: a close() while its data still arrives
        sends a RST, and the kernel drops what it had not yet delivered, close frame included.
        A peer that may still answer our close gets uvicorn's ``close_timeout`` to do so."""
        self.close_timer = None
        if self.disconnected:
            return
        now = self.loop.time()
        may_answer = not self.read_paused and now - self.linger_started < self.close_timeout
        if (unsent_bytes(self.transport) or may_answer) and now < self.linger_deadline:
            self.close_timer = self.loop.call_later(_POLL_S, self._close_when_delivered)
            return
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # the peer read nothing for LINGER_S
        else:
            self.transport.close()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.loop.call_later(LINGER_S, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def write_now(self, wire: bytes) -> bool:
        """Write at once if the transport takes it; False (nothing written) while paused or closing."""
        if not self.writable.is_set() or self.disconnected or self.close_sent or not self.handshake_complete or self.transport.is_closing():
            return False
        self.transport.write(wire)
        return True

    async def send_frame(self, wire: bytes) -> None:
        """Write a frame built by ``text_frame``; raises ClientDisconnected like ASGI send."""
        await self.writable.wait()
        if not self.write_now(wire):  # writable again, so it is going away
            raise ClientDisconnected()
