"""Lean WebSocket stream readers for the fan-out latency benchmark.

A Python WebSocket library spends ~100 µs of CPU per 8 KB frame (parser, UTF-8 decode, queues,
coroutine hops). 500 library clients on a 2-core machine therefore cost the measuring side more
CPU than the agent spends on the whole fan-out, and the p99 measures the harness. These readers do
the RFC 6455 handshake over a plain socket, then wait on epoll and timestamp each frame when the
`recv()` that completes it returns: the delivery time of the agent's bytes, not of a client's
parsing. Server frames are unmasked; pings are answered with masked pongs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import selectors
import socket
import time
from typing import cast
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SNAPSHOT = b'{"type":"snapshot"'


class HandshakeError(Exception):
    pass


def open_stream(url: str, token: str, timeout: float = 60.0) -> tuple[socket.socket, bytes]:
    """Connect and upgrade; returns the socket (non-blocking) and any bytes read past the answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16))
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: "
        + f"{host}:{port}".encode()
        + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + key
        + b"\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise HandshakeError(f"connection closed during the handshake: {answer[:200]!r}")
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise HandshakeError(f"upgrade refused: {status.decode(errors='replace')}")
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if accept not in head:
        raise HandshakeError("wrong Sec-WebSocket-Accept")
    sock.setblocking(False)
    return sock, rest


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask); only used for short control frames."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class FrameBuffer:
    """Bytes in, whole messages out: (opcode, payload). Reassembles fragments."""

    def __init__(self, data: bytes = b"") -> None:
        self.buf = bytearray(data)
        self._frag: bytearray | None = None
        self._frag_op = 0

    def messages(self) -> list[tuple[int, bytes]]:
        out = []
        buf = self.buf
        while len(buf) >= 2:
            size, head = buf[1] & 0x7F, 2
            if buf[1] & 0x80:
                raise ValueError("a server frame was masked")
            if size == 126:
                if len(buf) < 4:
                    break
                size, head = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    break
                size, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + size:
                break
            fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
            payload = bytes(buf[head : head + size])
            del buf[: head + size]
            if opcode >= 8:  # control frames may come between fragments
                out.append((opcode, payload))
            elif not fin:
                if opcode:
                    self._frag, self._frag_op = bytearray(payload), opcode
                elif self._frag is not None:
                    self._frag += payload
            elif opcode == 0 and self._frag is not None:
                out.append((self._frag_op, bytes(self._frag + payload)))
                self._frag = None
            else:
                out.append((opcode, payload))
        return out


def snapshot_ts(payload: bytes) -> float | None:
    if not payload.startswith(SNAPSHOT):
        return None
    at = payload.index(b'"ts":') + 5
    return float(payload[at : payload.index(b",", at)])


def read_streams(socks: list[tuple[socket.socket, bytes]], seconds: float) -> tuple[list[float], list[int]]:
    """Read every stream for ``seconds``; latency (ms) of each snapshot sampled after the start, and sizes."""
    sel = selectors.DefaultSelector()
    lat: list[float] = []
    sizes: list[int] = []
    began = time.time()  # frames sampled earlier waited in this side's buffers, not in the agent

    def handle(sock: socket.socket, frames: FrameBuffer, now: float) -> None:
        for opcode, payload in frames.messages():
            if opcode == 9:
                sock.sendall(masked(10, payload))
            elif opcode == 8:
                sel.unregister(sock)
                return
            elif opcode == 1:
                ts = snapshot_ts(payload)
                if ts is not None:
                    sizes.append(len(payload))
                    if ts >= began:
                        lat.append((now - ts) * 1000)

    for sock, rest in socks:
        frames = FrameBuffer(rest)
        sel.register(sock, selectors.EVENT_READ, frames)
        handle(sock, frames, time.time())  # what came with the handshake's answer (a ping waits for its pong)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                sock, frames = cast(socket.socket, key.fileobj), key.data  # only sockets are registered, above
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    continue
                now = time.time()
                if not chunk:
                    sel.unregister(sock)
                    continue
                frames.buf += chunk
                handle(sock, frames, now)
    finally:
        sel.close()
        for sock, _ in socks:
            sock.close()
    return lat, sizes
