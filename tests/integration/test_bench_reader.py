"""The benchmark's lean WebSocket readers (bench/wsreader.py) read real streams correctly."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bench.wsreader import FrameBuffer, HandshakeError, open_stream, read_streams, snapshot_ts


def test_reader_times_every_snapshot_of_a_real_agent(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    socks = [open_stream(agent.ws_url, agent.read_token) for _ in range(3)]
    lat, sizes = read_streams(socks, 1.6)
    assert len(lat) >= 3 * 5  # ~8 ticks per stream in 1.6 s; the first may predate the start
    assert all(0 <= ms < 1000 for ms in lat)
    assert all(size > 500 for size in sizes)


def test_a_refused_upgrade_is_a_handshake_error(start_agent):
    agent = start_agent("--simulate", "gb10")
    with pytest.raises(HandshakeError, match="upgrade refused: HTTP/1.1 401"):
        open_stream(agent.ws_url, "not-a-token")


def test_pings_are_answered_and_fragments_reassembled():
    from websockets.sync.server import serve

    outcome: dict = {}

    def handler(ws) -> None:
        outcome["pong"] = ws.ping().wait(5)
        # a full-precision ts: rounded to ms it could fall before the reader's start on a fast loopback and not be sampled
        ws.send([f'{{"type":"snapshot","ts":{time.time()!r},', '"pad":"' + "x" * 70_000, '"}'])  # one message, three frames

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        lat, sizes = read_streams([open_stream(f"ws://127.0.0.1:{port}/", "t")], 3.0)  # room for a loaded CI machine
        server.shutdown()
    assert outcome["pong"] is True
    assert len(lat) == 1 and sizes[0] > 70_000


def test_frame_lengths_at_every_header_size_and_masked_server_frames_refused():
    from agent.api.wsfast import text_frame

    payloads = [b'{"type":"snapshot","ts":1.5,' + b"x" * n + b"}" for n in (0, 200, 70_000)]
    wire = b"".join(text_frame(p) for p in payloads)
    buf = FrameBuffer(wire[:1])
    assert buf.messages() == []  # a partial header waits for more bytes
    buf.buf += wire[1:]
    assert [(op, p) for op, p in buf.messages()] == [(1, p) for p in payloads]
    assert snapshot_ts(payloads[0]) == 1.5 and snapshot_ts(b'{"type":"hello"}') is None
    with pytest.raises(ValueError, match="masked"):
        FrameBuffer(b"\x81\x85abcd12345").messages()


def test_a_ping_that_came_with_the_handshake_answer_is_answered():
    # bytes read past the 101 answer are parsed at once: a ping there gets its pong even if
    # nothing else arrives (the CI failure of the first version of this reader)
    from bench.wsreader import FrameBuffer as Frames

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    read_streams([(ours, b"\x89\x04ping")], 0.2)
    wire = peer.recv(64)
    peer.close()
    assert wire[0] == 0x8A and wire[1] == 0x84  # a masked pong of four bytes
    mask = wire[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(wire[6:10])) == b"ping"
    assert Frames(b"\x89\x04ping").messages() == [(9, b"ping")]
