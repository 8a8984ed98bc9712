"""The pre-built frames of the fan-out fast path are exactly what a WebSocket client expects."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_prebuilt_text_frame_parses_as_the_same_message(size: int) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    from agent.api.wsfast import text_frame

    payload = ("é" * size).encode()[:size]
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data == payload
