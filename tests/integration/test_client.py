"""tui/client.py: frame handling without a network, then against a real agent process."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from tests.helpers.agent import launch_agent
from tests.helpers.calls import wait_until
from tui import client as c
from tui.client import AgentClient, Backoff, History, Target, TargetError, log_lines, parse_url


def hello(v: int = 1, oldest: int | None = 1, latest: int | None = 50, scope: str = "control", interval: float = 1.0) -> dict:
    return {
        "type": "hello",
        "v": v,
        "agent_version": "0.1.0",
        "host": {"hostname": "spark"},
        "interval_s": interval,
        "scope": scope,
        "simulated": True,
        "oldest_seq": oldest,
        "latest_seq": latest,
    }


def snap(seq: int, util: float = 50.0) -> dict:
    return {
        "type": "snapshot",
        "v": 1,
        "seq": seq,
        "ts": 1000.0 + seq,
        "host": {"hostname": "spark", "cpu": {"percent": 10.0}, "memory": {"percent": 20.0}, "net": {"rx_bytes_s": 1.0, "tx_bytes_s": 2.0}},
        "gpus": [{"index": 0, "utilization_gpu_percent": util, "power_w": 40.0, "temperature_c": None}],
        "noise": {"index": 30.0},
    }


def fresh(**kw) -> AgentClient:
    return AgentClient(Target("t", "http://127.0.0.1:1", "tok"), clock=lambda: 5000.0, **kw)


# ---- no network --------------------------------------------------------------------------


def test_hello_goes_live_and_first_subscribe_asks_for_recent_history_only():
    cl = fresh(history_s=30)
    assert cl.state == c.CONNECTING
    assert cl.handle_frame(hello(oldest=1, latest=3600, interval=1.0)) == "hello"
    assert cl.state == c.LIVE and cl.can_control
    assert cl.subscribe_message() == {"type": "subscribe", "since_seq": 3570}
    cl2 = fresh(history_s=300)
    cl2.handle_frame(hello(oldest=5, latest=20))
    assert cl2.subscribe_message() == {"type": "subscribe", "since_seq": 4}  # all the agent holds


def test_after_a_reconnect_subscribe_backfills_from_last_seq():
    cl = fresh()
    cl.handle_frame(hello())
    for seq in (10, 11, 12):
        cl.handle_frame(snap(seq))
    cl.handle_frame(hello(latest=40))
    assert cl.subscribe_message() == {"type": "subscribe", "since_seq": 12}


def test_out_of_order_replay_fills_the_gap_without_duplicates():
    cl = fresh()
    seen = []
    cl.on_change = lambda client, kind: seen.append(kind)
    cl.handle_frame(hello())
    for seq in (1, 2, 3):
        cl.handle_frame(snap(seq))
    # reconnect: a live frame overtakes the replay of 4..6, then the replay repeats 7
    for seq in (7, 4, 5, 6, 7, 8):
        cl.handle_frame(snap(seq, util=seq))
    cl.handle_frame({"type": "backfill", "v": 1, "since_seq": 3, "first_seq": 4, "last_seq": 7, "count": 4, "complete": True})
    assert cl.history.seqs() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert cl.latest["seq"] == 8 and cl.last_seq == 8
    assert cl.frames == 8 and cl.backfills == 1
    assert cl.history.series("gpu0.util")[-5:] == [4, 5, 6, 7, 8]
    assert cl.history.series("gpu0.temp")[-1] is None  # n/a stays None, never 0
    assert "backfill" in seen


def test_a_restarted_agent_starts_a_new_seq_epoch_and_keeps_history():
    cl = fresh()
    cl.handle_frame(hello())
    for seq in range(100, 105):
        cl.handle_frame(snap(seq))
    cl.handle_frame(hello(oldest=1, latest=3))  # new process: seqs start again
    assert cl.last_seq is None
    assert cl.subscribe_message()["since_seq"] == 0
    for seq in (1, 2, 3):
        assert cl.handle_frame(snap(seq)) == "snapshot"
    assert len(cl.history) == 8 and cl.latest["seq"] == 3


def test_a_restart_is_also_caught_from_frame_times():
    cl = fresh()
    cl.handle_frame(hello(latest=10))
    for seq in (8, 9, 10):
        cl.handle_frame(snap(seq))
    late = snap(5)  # same agent, replayed late: older seq AND older time -> just history
    cl.handle_frame(late)
    assert cl.history.epoch == 0 and cl.latest["seq"] == 10
    restarted = {**snap(2), "ts": cl.latest["ts"] + 30}  # older seq, newer time -> a new process
    assert cl.handle_frame(restarted) == "snapshot"
    assert cl.history.epoch == 1 and cl.latest["seq"] == 2 and cl.last_seq == 2


def test_history_is_bounded():
    h = History(maxlen=5)
    for seq in range(1, 20):
        h.add(snap(seq))
    assert h.seqs() == [15, 16, 17, 18, 19]
    assert not h.add(snap(3))  # older than everything kept: dropped


@pytest.mark.parametrize("v", [0, 2])
def test_other_protocol_versions_are_incompatible_with_a_clear_reason(v):
    cl = fresh()
    cl.handle_frame(hello(v=v))
    assert cl.state == c.INCOMPATIBLE
    assert f"v{v}" in cl.reason and ("upgrade the client" if v > 1 else "upgrade the agent") in cl.reason


def test_read_scope_denies_control_with_a_reason():
    cl = fresh()
    assert "not connected" in cl.control_denied_reason()
    cl.handle_frame(hello(scope="read"))
    reason = cl.control_denied_reason()
    assert reason and "read" in reason and "control" in reason
    cl.handle_frame(hello(scope="control"))
    assert cl.control_denied_reason() is None


def test_model_frames_are_kept_per_model():
    cl = fresh()
    cl.handle_frame({"type": "pull_progress", "v": 1, "model": "vllm", "image": "x", "status": "Downloading", "current_bytes": 5, "total_bytes": 10})
    assert cl.model_progress["vllm"]["state"] == "pulling" and cl.model_progress["vllm"]["pull"]["current_bytes"] == 5
    cl.handle_frame({"type": "model_state", "v": 1, "name": "vllm", "state": "ready", "message": None, "since": 1.0, "url": "http://h:8000"})
    assert cl.model_progress["vllm"]["state"] == "ready" and cl.model_progress["vllm"]["pull"] is None
    assert cl.handle_frame({"type": "something_new", "v": 1}) is None  # newer frame types are ignored


def test_backoff_grows_with_jitter_and_is_capped():
    b = Backoff(base_s=0.5, cap_s=8.0, rng=random.Random(1))
    for attempt in range(12):
        top = min(8.0, 0.5 * 2**attempt)
        delays = {round(b.delay(attempt), 6) for _ in range(20)}
        assert all(top / 2 <= d <= top for d in delays)
        assert len(delays) > 1  # jitter: not one fixed value


def test_parse_url_accepts_ssh_and_rejects_what_ssh_would_misread():
    assert parse_url("http://spark.local:8611/") == "http://spark.local:8611"
    assert Target("x", "https://h:1").ws_url == "wss://h:1/api/v1/stream"
    assert parse_url("ssh://me@spark") == "ssh://me@spark"
    assert parse_url("ssh://spark:2222?agent_port=9000") == "ssh://spark:2222?agent_port=9000"
    for bad in ("ssh://-oProxyCommand=evil", "ssh://spark?rm=1", "ftp://x"):
        with pytest.raises(TargetError):
            parse_url(bad)


def test_log_lines_accepts_the_agent_shapes():
    assert log_lines({"container": "a", "lines": [{"stream": "stdout", "ts": None, "text": "hi"}, {"stream": "stderr", "ts": None, "text": "oops"}]}) == [
        "hi",
        "stderr| oops",
    ]
    assert log_lines({"type": "log_end", "v": 1, "reason": "container exited", "exit_code": 3}) == ["-- end of log: container exited (exit code 3) --"]
    assert log_lines("a\nb") == ["a", "b"]


# ---- against a real agent ----------------------------------------------------------------


async def test_live_with_backfilled_history(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1")
    await asyncio.sleep(1.0)  # the ring fills before we connect
    cl = AgentClient(Target("a", agent.url, agent.read_token))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.LIVE and cl.backfills >= 1)
        assert cl.scope == "read"
        assert cl.last_backfill["count"] >= 5  # history from before we connected
        assert len(cl.history) >= 5
        assert cl.latest["gpus"][0]["memory"]["unified"] is True
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
    assert cl.state == c.STOPPED


async def test_bad_token_is_auth_failed_with_what_to_do(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    cl = AgentClient(Target("a", agent.url, "not-a-token"))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.AUTH_FAILED)
        assert cl.reason.startswith(f"a rejected the token ({agent.url}); ") and f"sparkdeck hosts add a {agent.url} --token TOKEN" in cl.reason
        assert "401" not in cl.reason and "Bearer" not in cl.reason  # the machine and the fix, not the HTTP words
        await asyncio.sleep(0.5)
        assert cl.state == c.AUTH_FAILED  # no retry loop against a refusing agent
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)


async def test_agent_restart_reconnects_and_backfills(start_agent, tmp_path):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1")
    cl = AgentClient(Target("a", agent.url, agent.control_token), backoff=Backoff(base_s=0.2, cap_s=0.5))
    states: list[str] = []
    cl.on_change = lambda client, kind: states.append(client.state)
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.LIVE and cl.frames >= 3)
        agent.proc.kill()
        agent.proc.wait(10)
        await wait_until(lambda: cl.state == c.RECONNECTING and cl.next_try_at is not None)
        assert cl.stale and cl.reason
        before = len(cl.history)
        again = launch_agent(agent.state_dir, "--simulate", "gb10", "--interval", "0.1", port=agent.port, tokens=(agent.read_token, agent.control_token))
        try:
            await wait_until(lambda: cl.state == c.LIVE and len(cl.history) > before + 3)
            assert not cl.stale
            seq = cl.latest["seq"]
            await wait_until(lambda: cl.latest["seq"] > seq + 2)  # the new process's frames keep coming (no freeze)
            ts = [s.ts for s in cl.history.samples]
            assert ts == sorted(ts)  # one continuous history across both processes
            assert states.index(c.RECONNECTING) < len(states) - 1 - states[::-1].index(c.LIVE)
        finally:
            again.proc.kill()
            again.proc.wait(10)
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)


async def test_rest_helper_reports_agent_errors(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    cl = AgentClient(Target("a", agent.url, agent.read_token))
    info = await cl.request("GET", "/api/v1/info")
    assert info["protocol_version"] == 1
    with pytest.raises(c.ApiFailure) as err:
        await AgentClient(Target("a", agent.url, "bad")).request("GET", "/api/v1/info")
    assert err.value.status == 401 and err.value.code == "unauthorized"
    with pytest.raises(c.ApiFailure) as err:
        await AgentClient(Target("a", "http://127.0.0.1:9", None)).request("GET", "/api/v1/info", timeout=2)
    assert err.value.status == 0 and "cannot reach" in err.value.detail
    assert json.loads(json.dumps(info))  # plain JSON


# ---- against a scripted server (what no real agent of this version does) ----------------------


async def scripted_server(handler, process_request=None):
    from websockets.asyncio.server import serve

    return await serve(handler, "127.0.0.1", 0, process_request=process_request)


async def test_a_newer_agent_is_incompatible_and_not_retried():
    connections = []

    async def handler(ws):
        connections.append(ws)
        await ws.send(json.dumps(hello(v=2)))
        await ws.wait_closed()

    server = await scripted_server(handler)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("new", f"http://127.0.0.1:{port}", "t"), backoff=Backoff(base_s=0.05, cap_s=0.1))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.INCOMPATIBLE)
        assert "v2" in cl.reason and "upgrade the client" in cl.reason
        await asyncio.sleep(0.5)
        assert len(connections) == 1 and cl.state == c.INCOMPATIBLE  # no reconnect loop
        cl.retry_now()  # the user asks: one more try
        await wait_until(lambda: len(connections) == 2)
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()


async def test_forbidden_handshake_and_revoked_token_are_auth_failed():
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def deny(connection, request):
        body = json.dumps({"error": "forbidden", "detail": "this needs a control token; this one is read"}).encode()
        return Response(403, "Forbidden", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body)

    async def never(ws):
        await ws.wait_closed()

    server = await scripted_server(never, process_request=deny)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.AUTH_FAILED)
        assert cl.reason.startswith(f"x refused this token (http://127.0.0.1:{port}); on the machine: sparkdeck-agent token add")  # which machine, what to do
        assert "HTTP" not in cl.reason and "Bearer" not in cl.reason
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()

    async def revoke(ws):
        await ws.send(json.dumps(hello()))
        await ws.close(4401, "token revoked")

    server = await scripted_server(revoke)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.AUTH_FAILED)
        assert cl.reason == "token revoked"
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()


async def test_an_undigestible_frame_reconnects_instead_of_ending_the_client():
    attempts = []

    async def handler(ws):
        attempts.append(ws)
        await ws.send(json.dumps(hello()))
        if len(attempts) == 1:
            await ws.send(json.dumps({**snap(1), "seq": "not-a-number"}))
        else:
            await ws.send(json.dumps(snap(1)))
        await ws.wait_closed()

    server = await scripted_server(handler)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"), backoff=Backoff(base_s=0.05, cap_s=0.1))
    reasons = []
    cl.on_change = lambda client, kind: reasons.append(client.reason)
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.latest is not None and cl.state == c.LIVE)
        assert len(attempts) == 2
        assert any(r.startswith("client error: ValueError") for r in reasons)
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()


# ---- held snapshots (the fleet overview handles them on its tick) --------------------------


def wire(frame: dict) -> str:
    """A frame as the agent sends it (compact JSON, type and v first)."""
    from agent.protocol import encode

    return encode(frame)


async def test_held_snapshots_wait_for_release_in_order_and_stay_bounded(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1")
    cl = AgentClient(Target("a", agent.url, agent.read_token))
    holding = [False]
    cl.hold = lambda: holding[0]
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.state == c.LIVE and cl.latest is not None)
        holding[0] = True
        await wait_until(lambda: len(cl._held) >= 5, what="snapshots held")  # this agent's frames begin as HELD_PREFIX says
        frames, last = cl.frames, cl.last_seq
        held = [json.loads(raw)["seq"] for raw in cl._held]
        assert held == list(range(held[0], held[0] + len(held))) and held[0] > last  # in order, none handled yet
        cl.release()
        assert cl._held == [] and cl.frames >= frames + len(held) and cl.last_seq >= held[-1]
        # never released (a stalled tick): at most HELD_MAX wait; past that they are handled as they come
        sizes = []
        start = cl.frames
        for _ in range(40):
            sizes.append(len(cl._held))
            await asyncio.sleep(0.1)
        assert max(sizes) == c.HELD_MAX and cl.frames > start
        seqs = cl.history.seqs()
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # held or not, the history is in order
        holding[0] = False
        await wait_until(lambda: cl._held == [], what="the next frame releases the held ones")
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)


async def test_any_other_frame_and_the_socket_closing_release_the_held_snapshots_first():
    async def handler(ws):
        await ws.send(wire(hello()))
        await ws.send(wire(snap(1)))
        await ws.send(wire(snap(2)))
        await ws.send(wire({"type": "alert", "v": 1, "id": 7, "state": "firing", "message": "GPU hot"}))
        await ws.send(wire(snap(3)))
        await asyncio.sleep(0.5)
        await ws.close()

    server = await scripted_server(handler)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"), backoff=Backoff(base_s=5, cap_s=5))
    cl.hold = lambda: True
    kinds: list[tuple[str, int | None]] = []
    cl.on_change = lambda client, kind: kinds.append((kind, client.last_seq))
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: 7 in cl.agent_alerts, what="the alert")
        assert cl.last_seq == 2 and [k for k in kinds if k[0] in ("snapshot", "alert")] == [("snapshot", 1), ("snapshot", 2), ("alert", 2)]
        assert len(cl._held) <= 1  # snap(3) waits for a release, or for the socket to close
        await wait_until(lambda: cl.state == c.RECONNECTING, what="the socket closed")
        assert cl.last_seq == 3 and cl._held == []  # what came before the close is shown
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()


@pytest.mark.parametrize("then", ["a frame", "the close"])
async def test_a_held_frame_that_cannot_be_digested_reconnects_as_one_that_came_would(then):
    attempts = []

    async def handler(ws):
        attempts.append(ws)
        await ws.send(wire(hello()))
        if len(attempts) == 1:
            await ws.send(wire({**snap(1), "seq": "not-a-number"}))
            await asyncio.sleep(0.3)  # the client's tick releases it meanwhile
            if then == "a frame":
                await ws.send(wire(snap(2)))
            else:
                await ws.close()  # nothing after it: the session's end says why all the same
                return
        else:
            await ws.send(json.dumps(snap(1)))  # not compact: never held
        await ws.wait_closed()

    server = await scripted_server(handler)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"), backoff=Backoff(base_s=0.05, cap_s=0.1))
    cl.hold = lambda: True
    reasons = []
    cl.on_change = lambda client, kind: reasons.append(client.reason)
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: len(cl._held) == 1, what="the bad frame held")
        cl.release()  # as the app's tick does: it must not raise there
        await wait_until(lambda: cl.latest is not None and cl.state == c.LIVE)
        assert len(attempts) == 2 and cl.last_seq == 1
        assert any(r.startswith("client error: ValueError") for r in reasons)
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()


async def test_a_hold_question_that_raises_handles_the_frame_at_once():
    async def handler(ws):
        await ws.send(wire(hello()))
        await ws.send(wire(snap(1)))
        await ws.send(wire(snap(2)))
        await ws.wait_closed()

    def hold() -> bool:
        raise RuntimeError("no screen")  # the app mid-teardown

    server = await scripted_server(handler)
    port = server.sockets[0].getsockname()[1]
    cl = AgentClient(Target("x", f"http://127.0.0.1:{port}", "t"))
    cl.hold = hold
    task = asyncio.create_task(cl.run())
    try:
        await wait_until(lambda: cl.last_seq == 2, what="both frames handled")
        assert cl.state == c.LIVE and cl._held == [] and not cl.reason.startswith("client error")
    finally:
        await cl.close()
        await asyncio.wait_for(task, 10)
        server.close()
