"""Helpers for the container and model tests: REST calls and stream reading against a real agent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


def call(agent: Any, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
    return httpx.request(method, agent.url + path, headers=agent.headers(token), timeout=60, **kw)


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition", every: float = 0.1) -> Any:
    """Poll fn until it returns something truthy; the deadline is generous, not a speed check."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {got!r:.200})")
        time.sleep(every)


async def wait_until(fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition", every: float = 0.05) -> float:
    """wait_for inside a running event loop (the code under test runs on it); returns the seconds it took.

    Under Textual's pilot use tests.helpers.tui.until, which lets the app process its messages."""
    start = time.monotonic()
    while not fn():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start


def open_stream(agent: Any, token: str | None = None) -> Any:
    return connect(agent.ws_url, additional_headers=agent.headers(token or agent.read_token), max_size=2**24)


async def next_frame(ws: ClientConnection, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict:
    """The next frame (any type) that satisfies predicate; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no frame with {what} within {timeout}s")
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            raise AssertionError(f"no frame with {what} within {timeout}s") from None
        frame = json.loads(raw)
        if predicate(frame):
            return frame


def container_in(frame: dict, name: str) -> dict | None:
    if frame.get("type") != "snapshot":
        return None
    return next((c for c in frame["containers"] if c["name"] == name), None)


def model_state(agent: Any, name: str, token: str | None = None) -> dict:
    r = call(agent, "GET", "/api/v1/models", token or agent.read_token)
    assert r.status_code == 200, r.text
    return next(m for m in r.json()["models"] if m["name"] == name)["state"]
