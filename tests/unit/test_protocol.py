"""Client-message parsing: every bad input becomes a ProtocolError with a stable code."""

from __future__ import annotations

import json

import pytest

from agent.protocol import Ping, ProtocolError, Subscribe, encode, error_frame, parse_client_message


def test_subscribe_defaults_and_values():
    assert parse_client_message('{"type":"subscribe"}') == Subscribe(type="subscribe", since_seq=None, every=1)
    msg = parse_client_message('{"type":"subscribe","since_seq":41,"every":5}')
    assert (msg.since_seq, msg.every) == (41, 5)
    assert parse_client_message('{"type":"ping","id":"x"}') == Ping(type="ping", id="x")


@pytest.mark.parametrize(
    "raw,code",
    [
        ("", "bad_json"),
        ("{", "bad_json"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
        ("null", "bad_message"),
        ("42", "bad_message"),
        ('"subscribe"', "bad_message"),
        ("{}", "unknown_type"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": "' + "x" * 500 + '"}', "unknown_type"),
        ('{"type":"subscribe","every":0}', "invalid"),
        ('{"type":"subscribe","every":3601}', "invalid"),
        ('{"type":"subscribe","since_seq":-1}', "invalid"),
        ('{"type":"subscribe","since_seq":99999999999999999999999}', "invalid"),
        ('{"type":"subscribe","since_seq":true}', "invalid"),
        ('{"type":"subscribe","since_seq":1.5}', "invalid"),
        ('{"type":"subscribe","surprise":1}', "invalid"),
        ('{"type":"ping","id":{"deep":[1]}}', "invalid"),
        (b"\x00", "binary_not_supported"),
    ],
)
def test_bad_messages(raw, code):
    with pytest.raises(ProtocolError) as exc:
        parse_client_message(raw)
    assert exc.value.code == code
    assert len(exc.value.message) < 200  # a huge unknown type is not echoed back


def test_encode_is_compact_and_rejects_nan():
    assert encode({"a": 1, "b": [1, 2]}) == '{"a":1,"b":[1,2]}'
    with pytest.raises(ValueError):
        encode({"x": float("nan")})
    frame = json.loads(error_frame("bad_json", "message is not valid JSON"))
    assert frame == {"type": "error", "v": 1, "code": "bad_json", "message": "message is not valid JSON"}
