"""Hypothesis-driven client->agent WebSocket messages: no crash, documented answers, flat memory."""

from __future__ import annotations

import asyncio
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers.agent import launch_agent

ERROR_CODES = {"bad_json", "bad_message", "unknown_type", "invalid", "binary_not_supported"}
CLOSE_CODES = {1008, 1009}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
messages = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["subscribe", "ping", "launch", ""])}, optional={"since_seq": json_values, "every": json_values, "id": json_values}
    ).map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
)


async def exchange(agent, raw) -> tuple[str, object]:
    """Send one message; return ('frame', type) for the first non-snapshot answer or ('close', code)."""
    async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), max_size=2**22) as ws:
        await ws.recv()  # hello
        await ws.send(raw)
        await ws.send(json.dumps({"type": "ping", "id": "probe"}))
        try:
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if f["type"] in ("error", "pong", "backfill"):
                    return "frame", f
        except ConnectionClosed as exc:
            return "close", exc.rcvd.code if exc.rcvd else None


def test_fuzzed_messages(tmp_path, record):
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.5", env={"SPARKDECK_AUTH_FAIL_LIMIT": "0"})
    seen: dict[str, int] = {}
    rss0 = agent.rss()
    try:

        @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
        @given(messages)
        def one(raw):
            kind, what = asyncio.run(exchange(agent, raw))
            if kind == "close":
                assert what in CLOSE_CODES, what
                seen[f"close {what}"] = seen.get(f"close {what}", 0) + 1
            else:
                assert isinstance(what, dict), what
                assert what["type"] in ("error", "pong", "backfill")
                if what["type"] == "error":
                    assert what["code"] in ERROR_CODES and "Traceback" not in what["message"]
                key = str(what.get("code", what["type"]))
                seen[key] = seen.get(key, 0) + 1
            assert agent.proc.poll() is None

        one()
        growth = (agent.rss() - rss0) / 2**20
        record(
            "fuzz",
            "250 Hypothesis-generated client messages (random JSON, wrong types, huge numbers, deep nesting, binary)",
            f"0 crashes; answers {dict(sorted(seen.items()))}; RSS +{growth:.1f} MiB",
        )
        assert growth < 20
    finally:
        agent.stop()


async def test_burst_of_10000_and_an_oversized_frame(tmp_path, record):
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.5")
    try:
        rss0 = agent.rss()
        errors = 0
        async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), max_size=2**22) as ws:
            await ws.recv()
            t0 = time.monotonic()
            sender = asyncio.ensure_future(asyncio.gather(*(ws.send('{"type":"nope"}') for _ in range(10_000))))
            try:
                while errors < 10_000:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    errors += f["type"] == "error"
            except ConnectionClosed as exc:
                closed = exc.rcvd.code if exc.rcvd else None
            else:
                closed = None
            await asyncio.gather(sender, return_exceptions=True)
            burst_s = time.monotonic() - t0
        async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token)) as ws:
            await ws.recv()
            await ws.send("x" * (65 * 1024))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                big = exc.rcvd.code if exc.rcvd else None
        growth = (agent.rss() - rss0) / 2**20
        record(
            "fuzz",
            "10,000 bad frames in one burst, then a 65 KiB frame",
            f"{errors} error frames in {burst_s:.1f} s{f', then close {closed}' if closed else ''}; oversized frame closed with {big}; RSS +{growth:.1f} MiB",
        )
        assert errors == 10_000 or closed == 1008
        assert big == 1009 and agent.proc.poll() is None and growth < 20
    finally:
        agent.stop()
