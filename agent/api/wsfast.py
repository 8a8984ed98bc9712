"""Send one pre-framed WebSocket message to many clients: "encode once" down to the wire bytes.

A server's frames are not masked, so a text message is the same bytes for every
client. Through ASGI each send is re-encoded, re-framed and walks the middleware
stack (~70 µs a client in the 500-client profile in bench/README.md); here the
frame is built once per snapshot and each client costs one ``transport.write``.

``FanoutWebSocketProtocol`` is uvicorn's websockets-sansio protocol plus an ASGI
scope extension, ``sparkdeck.send_frame``, that honours the same flow control
as uvicorn's own ``send`` (it waits while the transport is paused). The stream
falls back to the plain ASGI send wherever the extension is absent.
"""

from __future__ import annotations

import struct

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "sparkdeck.send_frame"


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

    async def receive(self):  # type: ignore[no-untyped-def]
        message = await super().receive()  # resumes reading once the app took the last message...
        if self._ping_paused and not self.transport.is_closing():
            self.transport.pause_reading()  # ...but not while pongs wait for a peer that does not read
        return message

    def handle_connect(self, event) -> None:  # type: ignore[no-untyped-def]
        super().handle_connect(event)
        self.scope["extensions"][EXTENSION] = {"send": self.send_frame, "write_now": self.write_now}  # type: ignore[index]

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
