"""WebSocket ``/api/v1/stream``: hello, then live snapshots; subscribe for backfill.

One reader task parses client messages; the writer (this coroutine) drains the
client's queues from the hub. Neither ever blocks the sampler or other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from typing import cast

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from agent.api.deps import peer, stream_endpoint, stream_token
from agent.api.wsfast import EXTENSION, WireCache
from agent.hub import Close, Replay, StreamClient
from agent.protocol import (
    CLOSE_POLICY,
    STREAM_PATH,
    Ping,
    ProtocolError,
    Subscribe,
    encode,
    error_frame,
    frame,
    parse_client_message,
)
from agent.ring import Ring
from agent.runtime import Agent

log = logging.getLogger("sparkdeck.stream")
router = APIRouter()


@router.websocket(STREAM_PATH)
@stream_endpoint("read")  # token check, failure limit, max_streams_per_token
async def stream(ws: WebSocket) -> None:
    agent: Agent = ws.app.state.agent
    token = stream_token(ws)
    await ws.accept()
    client = StreamClient(queue_size=agent.settings.client_queue, token_name=token.name, token_created=token.created, scope=token.scope, peer=peer(ws))
    client.push_control(
        encode(
            frame(
                "hello",
                agent_version=agent.version,
                host=agent.host_info,
                interval_s=agent.settings.interval_s,
                scope=token.scope,
                simulated=agent.simulated,
                oldest_seq=await agent.oldest_seq(),
                latest_seq=agent.ring.latest_seq,
                incidents=agent.incidents.count,
            )
        )
    )
    recent = agent.guard.recent_event()
    if recent is not None:  # a client that connects after the guard acted still learns of it
        client.push_control(encode(recent))
    agent.hub.add(client)
    reader = asyncio.create_task(_read(ws, client))
    try:
        await _write(ws, client, agent)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the peer went away mid-send
    finally:
        agent.hub.remove(client)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        if client.dropped:
            log.debug("stream %s dropped %d frame(s) for falling behind", client.peer, client.dropped)


async def _read(ws: WebSocket, client: StreamClient) -> None:
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            client.remote_closed = True
            client.close(msg.get("code") or 1000, "")
            return
        raw = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
        try:
            parsed = parse_client_message(raw if raw is not None else "")
        except ProtocolError as exc:
            if not client.push_control(error_frame(exc.code, exc.message)):
                _policy_close(ws, client, "too many bad messages")
                return
            continue
        answer: object | None = None
        if isinstance(parsed, Subscribe):
            client.every = parsed.every
            if parsed.since_seq is not None:
                if client.replays.try_start():
                    answer = Replay(parsed.since_seq)
                else:  # a replay costs what it sends; a client asking for them in a loop waits its turn
                    wait = client.replays.retry_after_s()
                    answer = error_frame("replay_limited", f"replay budget spent: subscribe with since_seq again in {wait:.1f} s")
        elif isinstance(parsed, Ping):
            answer = encode(frame("pong", id=parsed.id))
        if answer is not None and not client.push_control(answer):  # it asks faster than it reads the answers
            _policy_close(ws, client, "too many unanswered messages")
            return


def _policy_close(ws: WebSocket, client: StreamClient, reason: str) -> None:
    """1008 for a client that sends faster than it reads: the close frame goes out at once."""
    _close_at_once(ws, CLOSE_POLICY, reason)
    client.close(CLOSE_POLICY, reason)


def _close_at_once(ws: WebSocket, code: int, reason: str) -> None:
    """Queue the close frame now: the writer may be parked on the socket of a client that
    floods and reads nothing, and would get to its Close item only once it reads."""
    close_now = ((ws.scope.get("extensions") or {}).get(EXTENSION) or {}).get("close_now")
    if close_now is not None:
        close_now(code, reason)


async def _write(ws: WebSocket, client: StreamClient, agent: Agent) -> None:
    ext = (ws.scope.get("extensions") or {}).get(EXTENSION, {})
    fast, write_now = ext.get("send"), ext.get("write_now")
    if write_now is not None:  # the hub may write live frames itself while this task is idle
        client.direct = lambda seq, text: write_now(WireCache.get(seq, text))
    while True:
        client.busy = False
        item = await client.next()
        client.busy = True
        if isinstance(item, Close):
            if not client.remote_closed:
                with contextlib.suppress(Exception):
                    await ws.close(item.code, item.reason)
            return
        if isinstance(item, Replay):
            sent = 0
            try:
                sent = await _replay(ws, client, agent, item.since_seq)
            finally:
                client.replays.charge(sent)
        elif isinstance(item, tuple):
            seq, text = item
            if seq > client.last_sent:
                if fast is not None:
                    await fast(WireCache.get(seq, text))
                else:
                    await ws.send_text(text)
                client.last_sent = seq
        else:  # push_control queues Close, Replay, (seq, text) or an encoded control frame
            await ws.send_text(cast(str, item))


async def _replay(ws: WebSocket, client: StreamClient, agent: Agent, since: int) -> int:
    """Frames after ``since``: first from the history store (older than the ring), then the ring.
    Returns the bytes of frame text sent, which the client's replay budget is charged."""
    ring = agent.ring
    oldest = await agent.oldest_seq()
    first = last = None
    count = sent = 0
    cursor = since

    async def send(seq: int, text: str) -> None:
        nonlocal first, last, count, cursor, sent
        if seq % client.every == 0:
            sent += len(text)
            await ws.send_text(text)
            client.last_sent = seq
            first = seq if first is None else first
            last = seq
            count += 1
        cursor = seq

    if agent.history is not None:
        while ring.oldest_seq is None or cursor + 1 < ring.oldest_seq:
            rows = await agent.history.store.frames_after(cursor, below=ring.oldest_seq)
            if not rows:
                break
            for seq, _, blob in rows:
                await send(seq, zlib.decompress(blob).decode())
    while True:  # loop: frames sampled while we were sending are caught up too
        entries = ring.after(cursor)
        if not entries:
            break
        for entry in entries:
            await send(entry.seq, Ring.text(entry))
    complete = oldest is not None and since + 1 >= oldest
    await ws.send_text(encode(frame("backfill", since_seq=since, first_seq=first, last_seq=last, count=count, complete=complete)))
    return sent
