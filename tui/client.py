"""Connection and protocol handling for the sparkdeck client.

No Textual, FastAPI, NVML or psutil here (tests/unit/test_layering.py checks): this
module speaks ``agent/protocol.py`` over a WebSocket (``websockets``) and a tiny
urllib REST helper run in a thread. The Textual app drives it and renders what
it holds; ``sparkdeck status`` uses the same REST helper.

One ``AgentClient`` per machine:

* states: connecting -> live -> reconnecting (exponential backoff with jitter,
  ``next_try_at``) -> live ...; ``auth_failed`` (401/403 on the handshake, or the
  token revoked mid-stream) and ``incompatible`` (protocol ``v`` differs) stop
  retrying until ``retry_now()``.
* history: every snapshot is appended to ``history`` here, in the network task,
  so charts lose no sample even while the UI is busy; the UI is only *notified*
  and reads ``latest`` when it gets round to it (latest wins).
* backfill: on the first connect it asks for the last ``history_s`` seconds the
  agent still holds; after a reconnect it asks for everything after ``last_seq``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import random
import re
import socket
import ssl as ssl_module
import time
import urllib.error
import urllib.parse
import urllib.request
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from agent import protocol
from agent.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    PROTOCOL_VERSION,
    STREAM_PATH,
)
from tui.format import state_words

CONNECTING = "connecting"
LIVE = "live"
RECONNECTING = "reconnecting"
AUTH_FAILED = "auth_failed"
INCOMPATIBLE = "incompatible"
STOPPED = "stopped"

HISTORY_LEN = 600  # samples kept per machine for charts
COLUMNS_KEPT = 32  # series a History keeps ready as (ts, value) lists, the most recently read first kept
AGENT_ALERTS_KEPT = 50  # agent alert frames kept per machine
GUARD_EVENTS_KEPT = 20  # memory guard frames kept per machine (alerts show the latest few)
HELD_MAX = 16  # snapshot frames a client holds for the app's next tick; past that it handles them as they come
HELD_PREFIX = protocol.encode(protocol.frame("snapshot"))[:-1] + ","  # how a snapshot begins on the wire (type and v first): only these are held


class TargetError(ValueError):
    """A target the client cannot use (bad URL, unsupported transport)."""


@dataclass(frozen=True)
class Target:
    """Where one agent lives: a display name, its http(s) base URL, a token."""

    name: str
    url: str
    token: str | None = None
    ssl: ssl_module.SSLContext | None = field(default=None, compare=False, repr=False)  # e.g. a pinned certificate (tui/pinning.py)
    via: str | None = None  # the ssh:// URL when ``url`` is the local end of an SSH tunnel (tui/transport.py)

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.url.startswith("https://") else "ws"
        return scheme + self.url[self.url.index("://") :] + STREAM_PATH


def parse_url(text: str) -> str:
    """Normalise an http(s) URL to ``scheme://host:port`` (no path); reject others."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme == "ssh":
        from tui.ssh import SshError, parse_ssh_url

        try:
            parse_ssh_url(text)  # validated here; the tunnel is opened by tui/transport.py
        except SshError as exc:
            raise TargetError(str(exc)) from None
        return text.rstrip("/")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TargetError(f"{text}: expected http://HOST:PORT, https://HOST:PORT, ssh://[USER@]HOST[:PORT] or a name from the hosts file")
    try:
        _ = parsed.port  # urllib parses the port lazily: reading it is the check
    except ValueError:
        raise TargetError(f"{text}: bad port") from None
    return f"{parsed.scheme}://{parsed.netloc}".rstrip("/")


def unique_labels(names: list[str]) -> list[str]:
    """Two machines are never shown under one name: repeats get " #2", " #3" (in target order)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out


# ---- history ------------------------------------------------------------------


def sample_metrics(snap: dict[str, Any]) -> dict[str, float | None]:
    """The numbers charts plot, pulled out of one snapshot frame."""
    out: dict[str, float | None] = {}
    host = snap.get("host") or {}
    out["cpu"] = (host.get("cpu") or {}).get("percent")
    out["mem"] = (host.get("memory") or {}).get("percent")
    net = host.get("net") or {}
    out["net.rx"] = net.get("rx_bytes_s")
    out["net.tx"] = net.get("tx_bytes_s")
    disk_io = host.get("disk_io") or {}
    out["disk.read"] = disk_io.get("read_bytes_s")
    out["disk.write"] = disk_io.get("write_bytes_s")
    out["noise"] = (snap.get("noise") or {}).get("index")
    for gpu in snap.get("gpus") or []:
        i = gpu.get("index")
        out[f"gpu{i}.util"] = gpu.get("utilization_gpu_percent")
        out[f"gpu{i}.power"] = gpu.get("power_w")
        out[f"gpu{i}.temp"] = gpu.get("temperature_c")
    return out


@dataclass
class Sample:
    epoch: int  # bumps when the agent restarted (its seq numbers start again)
    seq: int
    ts: float
    values: dict[str, float | None]


class History:
    """Bounded metric samples in (epoch, seq) order; a seq already held is not added twice.

    Frames can arrive out of order right after a subscribe (live frames sent before
    the replay of the gap), so a late, older sample is inserted at its place.
    """

    def __init__(self, maxlen: int = HISTORY_LEN):
        self.maxlen = maxlen
        self.samples: deque[Sample] = deque()
        self.epoch = 0
        self.version = 0  # counts the samples added: a drawing made from these samples is current while it stays the same
        self._seqs: set[tuple[int, int]] = set()
        # What the charts read, kept ready: every chart on screen asked for its window each frame, and building it
        # went through every sample held (nine charts on the detail screen, 300+ samples each: a fifth of a frame)
        self._ts: list[float] = []  # the samples' times, in order
        self._descents = 0  # neighbours whose time goes back (a clock step): while 0, a window's start is a bisect
        self._columns: dict[str, list[tuple[float, float | None]]] = {}  # key -> (ts, value) per sample, read last is last

    def __len__(self) -> int:
        return len(self.samples)

    def __contains__(self, seq: int) -> bool:
        return (self.epoch, seq) in self._seqs

    def new_epoch(self) -> None:
        self.epoch += 1

    def add(self, snap: dict[str, Any]) -> bool:
        seq = int(snap.get("seq", 0))
        key = (self.epoch, seq)
        if key in self._seqs:
            return False
        sample = Sample(self.epoch, seq, float(snap.get("ts", 0.0)), sample_metrics(snap))
        if not self.samples or (self.samples[-1].epoch, self.samples[-1].seq) < key:
            self.samples.append(sample)
            if self._ts and sample.ts < self._ts[-1]:
                self._descents += 1
            self._ts.append(sample.ts)
            for name, column in self._columns.items():
                column.append((sample.ts, sample.values.get(name)))
        else:
            i = len(self.samples)
            while i > 0 and (self.samples[i - 1].epoch, self.samples[i - 1].seq) > key:
                i -= 1
            if i == 0 and len(self.samples) >= self.maxlen:
                return False  # older than everything we keep
            self.samples.insert(i, sample)
            self._reindex()  # a late sample in the middle (a replay overlapping live frames): rare
        self._seqs.add(key)
        self.version += 1
        while len(self.samples) > self.maxlen:
            old = self.samples.popleft()
            self._seqs.discard((old.epoch, old.seq))
            if len(self._ts) > 1 and self._ts[1] < self._ts[0]:
                self._descents -= 1
            del self._ts[0]
            for column in self._columns.values():
                del column[0]
        return True

    def _reindex(self) -> None:
        self._ts = [s.ts for s in self.samples]
        self._descents = sum(1 for a, b in zip(self._ts, self._ts[1:], strict=False) if b < a)
        self._columns.clear()

    def _column(self, key: str) -> list[tuple[float, float | None]]:
        column = self._columns.pop(key, None)
        if column is None:
            column = [(s.ts, s.values.get(key)) for s in self.samples]
            while len(self._columns) >= COLUMNS_KEPT:  # bounded: the series read longest ago goes
                del self._columns[next(iter(self._columns))]
        self._columns[key] = column  # last: read most recently
        return column

    def series(self, key: str, last: int | None = None) -> list[float | None]:
        items = list(self.samples)[-last:] if last else self.samples
        return [s.values.get(key) for s in items]

    def points(self, key: str, since: float | None = None, at_least: int = 0) -> list[tuple[float, float | None]]:
        """(ts, value) pairs for a time-indexed chart: gaps between samples stay gaps. ``since``: only the
        samples from then on (and at least the last ``at_least``), read from the newest end: a card's
        two-minute sparkline need not copy ten minutes of samples every frame."""
        column = self._column(key)
        if since is None:
            return column.copy()
        if not self._descents:  # times in order: the window is a slice
            return column[max(0, min(bisect_left(self._ts, since), len(column) - at_least)) :]
        return self._points_scan(key, since, at_least)

    def _points_scan(self, key: str, since: float, at_least: int = 0) -> list[tuple[float, float | None]]:
        """``points`` by walking the samples from the newest (while a clock step has times out of order)."""
        out: list[tuple[float, float | None]] = []
        for s in reversed(self.samples):
            if s.ts < since and len(out) >= at_least:
                break
            out.append((s.ts, s.values.get(key)))
        out.reverse()
        return out

    def seqs(self) -> list[int]:
        return [s.seq for s in self.samples]

    def span_s(self) -> float:
        return self.samples[-1].ts - self.samples[0].ts if len(self.samples) > 1 else 0.0


# ---- REST ---------------------------------------------------------------------


class ApiFailure(Exception):
    """An agent answer other than 2xx, or no answer at all (status 0)."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{detail} ({code}{', HTTP ' + str(status) if status else ''})")
        self.status = status
        self.code = code
        self.detail = detail


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # 422: [{"loc": [...], "msg": ...}]
        return "; ".join(f"{'.'.join(d.get('loc', []))}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in detail)
    return json.dumps(detail)


def rest_call(
    url: str, token: str | None, method: str, path: str, body: Any = None, timeout: float = 10.0, context: ssl_module.SSLContext | None = None
) -> Any:
    """Blocking JSON request; returns the decoded body or raises ApiFailure."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            obj = json.loads(raw)
            code, detail = str(obj.get("error", "error")), _detail_text(obj.get("detail", ""))
        except (ValueError, AttributeError):
            code, detail = "error", raw.decode(errors="replace")[:200] or exc.reason
        raise ApiFailure(exc.code, code, detail) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiFailure(0, "unreachable", f"cannot reach {url}: {reason}") from None
    except ValueError:
        raise ApiFailure(0, "bad_response", f"{url}{path} did not answer JSON") from None


# ---- the streaming client ----------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with full jitter: delay in [base*2^n/2, base*2^n], capped."""

    base_s: float = 0.5
    cap_s: float = 15.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        top = min(self.cap_s, self.base_s * (2 ** min(attempt, 16)))
        return top / 2 + self.rng.random() * top / 2


class AgentClient:
    """Keeps one agent's stream open, with state, latest snapshot and history."""

    def __init__(
        self,
        target: Target,
        *,
        on_change: Callable[[AgentClient, str], None] | None = None,
        history_s: float = 300.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        open_timeout_s: float = 5.0,
    ):
        self.target = target
        self.label: str | None = None  # set by the app when two targets share a name (unique_labels)
        self.on_change = on_change or (lambda client, kind: None)
        self.history_s = history_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.open_timeout_s = open_timeout_s

        self.state = CONNECTING
        self.reason = ""  # why the state is what it is (errors, auth reason, version)
        self.attempt = 0
        self.next_try_at: float | None = None
        self.hello: dict[str, Any] | None = None
        self.latest: dict[str, Any] | None = None
        self.last_seq: int | None = None
        self.last_frame_at: float | None = None  # wall time of the newest frame received
        self.history = History()
        self.frames = 0  # snapshot frames handled (including backfill)
        # While the app paints on its tick only (the fleet overview), the snapshots that come meanwhile wait for that
        # tick and are handled together (release): ten agents' frames decoded one by one as each arrived cost
        # a tenth of the overview's CPU more than the same work done in one go, the CPU's caches cold every time
        self.hold: Callable[[], bool] | None = None  # set by the app: True while snapshots may wait for release()
        self._held: list[str] = []
        self._failed: Exception | None = None  # a held frame this client could not digest: the session ends on it
        # The throttle reasons the newest snapshot showed per GPU (protocol.throttle_active, the rule the agent's events
        # follow), and a count of their changes and of new sessions: the detail screen fetches the events again on it
        self.throttle_active: dict[int, frozenset[str]] = {}
        self.throttle_changes = 0
        self.backfills = 0
        self.last_backfill: dict[str, Any] | None = None
        self.last_error_frame: dict[str, Any] | None = None
        self.model_progress: dict[str, dict[str, Any]] = {}  # model name -> newest model_state (+ "pull": pull_progress)
        self.guard_events: deque[dict[str, Any]] = deque(maxlen=GUARD_EVENTS_KEPT)  # the memory guard's actions, oldest first
        self.agent_alerts: dict[int, dict[str, Any]] = {}  # ``alert`` frames by id: firing ones and recent events
        self._alerts_task: asyncio.Task | None = None
        self._retry = asyncio.Event()
        self._forwards: dict[int, Any] = {}  # remote port -> tui.ssh.Tunnel
        self._ws: ClientConnection | None = None
        self._stopping = False

    # -- derived -------------------------------------------------------------------
    @property
    def scope(self) -> str | None:
        return (self.hello or {}).get("scope")

    @property
    def can_control(self) -> bool:
        return self.scope == "control"

    @property
    def stale(self) -> bool:
        """True when what we show is not current: anything but live with data."""
        return self.latest is not None and self.state != LIVE

    @property
    def name(self) -> str:
        """What the user called this machine (hosts-file name, else the URL); the app makes it unique."""
        return self.label or self.target.name

    @property
    def agent_hostname(self) -> str | None:
        """The hostname the agent reports (None before its hello): shown beside the name, never instead of it."""
        snap = self.latest or self.hello
        return snap["host"]["hostname"] if snap else None

    @property
    def hostname(self) -> str:
        if self.latest:
            return self.latest["host"]["hostname"]
        if self.hello:
            return self.hello["host"]["hostname"]
        return self.target.name

    def control_denied_reason(self) -> str | None:
        """None when control actions may be sent; otherwise why not, for the UI."""
        if self.state != LIVE:
            return f"not connected ({self.state.replace('_', ' ')})"
        if not self.can_control:
            return f"this token has '{self.scope}' scope; actions need a 'control' token (sparkdeck-agent token add NAME --scope control)"
        return None

    # -- frames (no network: tests and snapshot tests feed these directly) -------------
    def handle_text(self, raw: str | bytes) -> str | None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return None
        return self.handle_frame(frame) if isinstance(frame, dict) else None

    def handle_frame(self, frame: dict[str, Any]) -> str | None:
        """Apply one agent frame; returns its kind when it changed something."""
        kind = frame.get("type")
        if kind == "hello":
            return self._on_hello(frame)
        if frame.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
            self._incompatible(frame.get("v"))
            return "state"
        if kind == "snapshot":
            seq = int(frame.get("seq", 0))
            if self.latest is not None and self.last_seq is not None and seq <= self.last_seq and frame.get("ts", 0) > self.latest.get("ts", 0):
                self._new_epoch()  # an older seq with a newer time: the agent restarted and numbers from 1 again
            if not self.history.add(frame):
                return None  # already have it (replay overlap)
            self.frames += 1
            if self.last_seq is not None and seq <= self.last_seq:
                self._notify("snapshot")  # a late backfilled sample: charts change, latest does not
                return "snapshot"
            self.last_seq = seq
            self.latest = frame
            self.last_frame_at = self.clock()
            self._note_throttle(frame)
            self._notify("snapshot")
            return "snapshot"
        if kind == "backfill":
            self.backfills += 1
            self.last_backfill = frame
            self._notify("backfill")
            return "backfill"
        if kind == "error":
            self.last_error_frame = frame
            self._notify("error")
            return "error"
        if kind == "model_state" and isinstance(frame.get("name"), str):
            self.model_progress[frame["name"]] = {**self.model_progress.get(frame["name"], {}), **frame, "pull": None}
            self._notify("model")
            return "model"
        if kind == "pull_progress" and isinstance(frame.get("model"), str):
            entry = self.model_progress.setdefault(frame["model"], {"state": "pulling"})
            entry["pull"] = frame
            self._notify("model")
            return "model"
        if kind == "alert" and isinstance(frame.get("id"), int) and isinstance(frame.get("message"), str):
            self.agent_alerts.pop(frame["id"], None)
            if frame.get("state") != "resolved":
                self.agent_alerts[frame["id"]] = frame
            while len(self.agent_alerts) > AGENT_ALERTS_KEPT:  # bounded: the oldest go first
                self.agent_alerts.pop(next(iter(self.agent_alerts)))
            self._notify("alert")
            return "alert"
        if kind == "guard" and isinstance(frame.get("message"), str) and isinstance(frame.get("ts"), (int, float)):
            if any(e["ts"] == frame["ts"] for e in self.guard_events):
                return None  # re-sent after a reconnect: already shown
            self.guard_events.append(frame)
            self._notify("guard")
            return "guard"
        return None  # pong, and frame types newer than this client: ignored

    def _on_hello(self, hello: dict[str, Any]) -> str:
        if hello.get("v") != PROTOCOL_VERSION:
            self._incompatible(hello.get("v"))
            return "state"
        latest = hello.get("latest_seq")
        if self.last_seq is not None and (latest is None or latest < self.last_seq):
            self._new_epoch()  # a restarted agent numbers from 1 again
        self.hello = hello
        self.throttle_changes += 1  # a new session: what changed while away is not in the snapshots seen
        self.attempt = 0
        self.next_try_at = None
        self._set_state(LIVE, "")
        return "hello"

    def _note_throttle(self, frame: dict[str, Any]) -> None:
        active = protocol.throttle_active(frame)
        if any(self.throttle_active.get(gpu) != reasons for gpu, reasons in active.items()):
            self.throttle_changes += 1
        # the GPUs of this frame only (bounded by one frame); one with its reasons unknown keeps the last ones known
        indices = [g.get("index") for g in frame.get("gpus") or ()]
        self.throttle_active = {i: active[i] if i in active else self.throttle_active[i] for i in indices if i in active or i in self.throttle_active}

    def _new_epoch(self) -> None:
        """The agent restarted: keep the history (charts stay continuous), start a new seq numbering.

        Detected when hello.latest_seq is below our last seq, or when a frame has an older
        seq but a newer time. A restarted agent that already passed our last seq is not
        detected, and needs not be: its frames all have larger seqs and newer times.
        """
        self.last_seq = None
        self.history.new_epoch()

    def subscribe_message(self) -> dict[str, Any] | None:
        """What to send after hello: backfill the gap, or recent history on first connect."""
        if self.last_seq is not None:
            return {"type": "subscribe", "since_seq": self.last_seq}
        hello = self.hello or {}
        oldest, latest = hello.get("oldest_seq"), hello.get("latest_seq")
        if oldest is None or latest is None:
            return None
        interval = float(hello.get("interval_s") or 1.0)
        want = min(HISTORY_LEN, math.ceil(self.history_s / interval))
        return {"type": "subscribe", "since_seq": max(oldest - 1, latest - want, 0)}

    def _incompatible(self, v: Any) -> None:
        newer = isinstance(v, int) and v > PROTOCOL_VERSION
        which = "newer" if newer else "older"
        self._set_state(
            INCOMPATIBLE, f"agent speaks protocol v{v}, this client v{PROTOCOL_VERSION}: the agent is {which}; upgrade the {'client' if newer else 'agent'}"
        )

    def _set_state(self, state: str, reason: str) -> None:
        if state == self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        self._notify("state")

    def _notify(self, kind: str) -> None:
        try:
            self.on_change(self, kind)
        except Exception:  # a UI callback must never kill the network task
            pass

    # -- network -----------------------------------------------------------------------
    def retry_now(self) -> None:
        """Skip the backoff wait (and leave auth_failed/incompatible to try again)."""
        self.attempt = 0
        self._retry.set()

    async def close(self) -> None:
        self._stopping = True
        if self._alerts_task is not None:
            self._alerts_task.cancel()
        if self._ws is not None:
            await self._ws.close()
        self._retry.set()
        for tunnel in self._forwards.values():
            await asyncio.to_thread(tunnel.close)
        self._forwards.clear()

    async def forward(self, port: int) -> str:
        """A URL on this machine for ``port`` on the agent's machine.

        Over SSH this opens (once) an ``ssh -L`` forward that lives until close();
        otherwise the port is addressed directly on the agent's host."""
        if not self.target.via:
            host = urllib.parse.urlsplit(self.target.url).hostname or "127.0.0.1"
            return f"http://{host}:{port}"
        if port not in self._forwards:
            from tui.ssh import Tunnel, parse_ssh_url

            tunnel = Tunnel(parse_ssh_url(self.target.via), port)
            await asyncio.to_thread(tunnel.open)
            self._forwards[port] = tunnel
        return self._forwards[port].local_url

    def _tls(self) -> dict[str, Any]:
        return {"ssl": self.target.ssl} if self.target.ssl is not None and self.target.ws_url.startswith("wss://") else {}

    async def run(self) -> None:
        """Connect, stream, reconnect; returns only after close()."""
        headers = {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}
        while not self._stopping:
            if self.state not in (RECONNECTING, CONNECTING):
                self._set_state(CONNECTING if self.latest is None else RECONNECTING, self.reason)
            terminal = False
            try:
                async with connect(
                    self.target.ws_url,
                    additional_headers=headers,
                    **self._tls(),
                    open_timeout=self.open_timeout_s,
                    ping_interval=10,
                    ping_timeout=10,
                    max_size=2**24,
                    close_timeout=2,
                ) as ws:
                    self._ws = ws
                    terminal = await self._session(ws)
            except InvalidStatus as exc:
                terminal = self._on_denied(exc.response.status_code, exc.response.body or b"")
            except InvalidURI as exc:
                self._set_state(STOPPED, f"bad URL: {exc}")
                terminal = True
            except ConnectionClosed as exc:
                terminal = self._on_closed(exc)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self.reason = _short_error(exc, self.target.via or self.target.url)
            except Exception as exc:  # noqa: BLE001 - a frame this client cannot digest must not end the stream for good
                self.reason = f"client error: {type(exc).__name__}: {str(exc)[:120]}"
            finally:
                self._ws = None
            if self._stopping:
                break
            await self._wait_before_retry(terminal)
        self._set_state(STOPPED, "closed")

    def release(self) -> None:
        """Handle the held snapshots, in the order they came. Never raises: a frame that cannot be digested ends the
        session at its next frame, as it would have ended it then (run() reconnects), and the rest are dropped."""
        held, self._held = self._held, []
        for raw in held:
            try:
                self.handle_text(raw)
            except Exception as exc:  # noqa: BLE001 - the session raises it (see _session)
                self._failed = exc
                return

    def _holds(self, raw: str | bytes) -> bool:
        if self.hold is None or not isinstance(raw, str) or not raw.startswith(HELD_PREFIX) or len(self._held) >= HELD_MAX:
            return False
        try:
            return self.hold()
        except Exception:  # noqa: BLE001 - the app's question (a screen stack mid-teardown): the frame is handled now
            return False

    async def _session(self, ws) -> bool:
        """Read frames until the socket closes; True when retrying is pointless."""
        self._failed = None
        try:
            terminal = await self._read(ws)
        finally:
            self.release()  # what came before the socket closed is shown, whatever ended the session
        self._raise_failed()  # a held frame that failed with no frame after it: the reason says so all the same
        return terminal

    def _raise_failed(self) -> None:
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed  # run() takes it as it takes a frame that fails as it comes

    async def _read(self, ws) -> bool:
        async for raw in ws:
            self._raise_failed()  # a held frame the tick could not digest
            if self._holds(raw):
                self._held.append(raw)
                continue
            self.release()  # first: frames are handled in the order they came
            self._raise_failed()
            kind = self.handle_text(raw)
            if kind == "state" and self.state == INCOMPATIBLE:
                await ws.close()
                return True
            if kind == "hello":
                msg = self.subscribe_message()
                if msg is not None:
                    await ws.send(json.dumps(msg))
                if self._alerts_task is None or self._alerts_task.done():  # what fired while we were away
                    self._alerts_task = asyncio.create_task(self._load_alerts())
        code, why = ws.close_code, ws.close_reason
        if code in (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN):
            self._set_state(AUTH_FAILED, why or "token revoked")
            return True
        self.reason = f"connection closed ({code if code is not None else 'no close frame'}{': ' + why if why else ''})"
        return False

    def _on_closed(self, exc: ConnectionClosed) -> bool:
        rcvd = exc.rcvd
        if rcvd is not None and rcvd.code in (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN):
            self._set_state(AUTH_FAILED, rcvd.reason or "token revoked")
            return True
        self.reason = "connection lost"
        return False

    def _on_denied(self, status: int, body: bytes | bytearray) -> bool:
        try:
            detail = _detail_text(json.loads(body).get("detail", ""))
        except (ValueError, AttributeError):
            detail = body.decode(errors="replace")[:200]
        if status in (401, 403):
            self._set_state(AUTH_FAILED, auth_advice(self.name, self.target, status))
            return True
        if status == 404:
            self.reason = f"HTTP 404: no {STREAM_PATH} here (not a sparkdeck agent, or one too old)"
        else:
            self.reason = f"HTTP {status}: {detail}"
        return False

    async def _wait_before_retry(self, terminal: bool) -> None:
        self._retry.clear()
        if terminal:
            await self._retry.wait()  # until retry_now()
            self._set_state(CONNECTING if self.latest is None else RECONNECTING, "retrying")
            return
        delay = self.backoff.delay(self.attempt)
        self.attempt += 1
        self.next_try_at = self.clock() + delay
        self.state = RECONNECTING  # set before notify so the reason shows with the new next_try_at
        self._notify("state")
        try:
            await asyncio.wait_for(self._retry.wait(), delay)
        except TimeoutError:
            pass
        self.next_try_at = None

    # -- REST ------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        return await asyncio.to_thread(rest_call, self.target.url, self.target.token, method, path, body, timeout, self.target.ssl)

    async def stored_points(self, metrics: list[str], seconds: float, points: int = 120) -> dict[str, list[tuple[float, float | None]]]:
        """The agent's stored series (avg per step) for the last ``seconds`` as (ts, avg) points, oldest first."""
        now = time.time()
        query = urllib.parse.urlencode({"metrics": ",".join(metrics), "from": now - seconds, "to": now, "step": max(1.0, seconds / points)})
        body = await self.request("GET", f"/api/v1/history?{query}")
        return {name: list(zip(series.get("ts", []), series.get("avg", []), strict=False)) for name, series in (body.get("series") or {}).items()}

    async def throttle_events(self, seconds: float) -> tuple[list[dict[str, Any]], float, float]:
        """GPU throttle events overlapping the last ``seconds``: (events, from, to)."""
        now = time.time()
        # a short time-out: the detail screen asks every 5 s, and a dead link must not pile up threads
        body = await self.request("GET", f"/api/v1/events?{urllib.parse.urlencode({'kind': 'throttle', 'from': now - seconds, 'to': now})}", timeout=5.0)
        return list(body.get("events") or []), float(body.get("from") or now - seconds), float(body.get("to") or now)

    async def _load_alerts(self) -> None:
        """The agent's firing and recent alerts, as if their frames had arrived (agents before alerts: nothing)."""
        try:
            body = await self.request("GET", "/api/v1/alerts?limit=20", timeout=10.0)
        except Exception:  # unreachable, refused, an older agent (404): the live frames still come
            return
        if not isinstance(body, dict):
            return
        known = set(self.agent_alerts)  # live frames that came meanwhile are newer than this answer
        for alert in reversed([a for a in body.get("recent") or [] if isinstance(a, dict)]):  # oldest first, as frames come
            if alert.get("id") not in known:
                self.handle_frame({**alert, "type": "alert"})

    async def container_action(self, ref: str, action: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
        path = f"/api/v1/containers/{urllib.parse.quote(ref, safe='')}/{action}" + (f"?{query}" if query else "")
        return await self.request("POST", path)

    async def container_logs(self, ref: str, tail: int = 200) -> list[str]:
        body = await self.request("GET", f"/api/v1/containers/{urllib.parse.quote(ref, safe='')}/logs?tail={int(tail)}")
        return log_lines(body)

    async def container_log_entries(self, ref: str, tail: int = 200) -> list[LogLine]:
        """The last ``tail`` lines with their timestamps (the logs screen's `t` shows them)."""
        body = await self.request("GET", f"/api/v1/containers/{urllib.parse.quote(ref, safe='')}/logs?tail={int(tail)}")
        return log_entries(body)

    async def follow_logs(self, ref: str, on_line: Callable[[str], object], tail: int = 0) -> None:
        """Follow a container's logs over the agent's logs WebSocket until it ends."""
        await self.follow_log_entries(ref, lambda entry: on_line(entry.text), tail)

    async def follow_log_entries(self, ref: str, on_entry: Callable[[LogLine], object], tail: int = 0) -> None:
        """Follow a container's logs, each line with its timestamp, until the stream ends."""
        headers = {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}
        base = self.target.ws_url[: -len(STREAM_PATH)]
        url = f"{base}/api/v1/containers/{urllib.parse.quote(ref, safe='')}/logs/stream?tail={int(tail)}"
        async with connect(url, additional_headers=headers, open_timeout=self.open_timeout_s, max_size=2**22, **self._tls()) as ws:
            async for raw in ws:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    on_entry(LogLine(None, str(raw)))
                    continue
                for entry in log_entries(obj):
                    on_entry(entry)

    async def models(self) -> list[dict[str, Any]]:
        body = await self.request("GET", "/api/v1/models")
        if isinstance(body, dict):
            body = body.get("models", [])
        return list(body or [])

    async def model_action(self, name: str, action: str, body: dict[str, Any] | None = None) -> Any:
        return await self.request("POST", f"/api/v1/models/{urllib.parse.quote(name, safe='')}/{action}", body or {})

    async def processes(self) -> dict[str, Any]:
        """GET /api/v1/processes: the GPU compute processes, enriched by the agent."""
        return await self.request("GET", "/api/v1/processes", timeout=10.0)

    async def signal_process(self, pid: int, sig: str, start_time: float | None = None) -> dict[str, Any]:
        """Signal a GPU process; start_time (from its row) makes the agent refuse a reused pid."""
        body: dict[str, Any] = {"signal": sig}
        if start_time is not None:
            body["start_time"] = start_time
        return await self.request("POST", f"/api/v1/processes/{int(pid)}/signal", body, timeout=45.0)


class LogLine(NamedTuple):
    """One log line as the logs screen shows it; ``ts`` is the engine's RFC 3339 time when the agent sent one."""

    ts: str | None
    text: str


def log_entries(body: Any) -> list[LogLine]:
    """Accept the shapes a logs answer may take: text, a list, {"lines": [...]}, one entry (its ``ts`` kept)."""
    if body is None:
        return []
    if isinstance(body, str):
        return [LogLine(None, line) for line in body.splitlines()]
    if isinstance(body, dict):
        for key in ("lines", "logs", "entries"):
            if key in body:
                return log_entries(body[key])
        if body.get("type") == "log_end":
            code = body.get("exit_code")
            return [LogLine(None, f"-- end of log: {state_words('stream ended', body.get('reason'), code).removeprefix('stream ended: ')} --")]
        if "line" in body or "text" in body or "message" in body:
            text = str(body.get("line", body.get("text", body.get("message", "")))).rstrip("\n")
            ts = body.get("ts") if isinstance(body.get("ts"), str) else None
            return [LogLine(ts, f"stderr| {text}" if body.get("stream") == "stderr" else text)]
        return []
    if isinstance(body, Iterable):
        out: list[LogLine] = []
        for item in body:
            out.extend(log_entries(item))
        return out
    return [LogLine(None, str(body))]


def log_lines(body: Any) -> list[str]:
    """The text of each line (no timestamps)."""
    return [entry.text for entry in log_entries(body)]


def auth_advice(name: str, target: Target, status: int) -> str:
    """A rejected token in words: which machine, and the command that gets a good one."""
    what = "has no token" if not target.token else ("rejected the token" if status == 401 else "refused this token")
    url = target.via or target.url
    if url.startswith("ssh://"):
        fix = f"sparkdeck hosts add {target.name} {url} --fetch-token"
    else:
        fix = f"on the machine: sparkdeck-agent token add NAME --scope control, then sparkdeck hosts add {target.name} {url} --token TOKEN"
    return f"{name} {what} ({url}); {fix}"


# errno -> what it means for an agent we try to reach (the OS words, e.g. "[Errno 111] Connect call failed", say less)
_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused: nothing listens on {where} (is sparkdeck-agent running there?)",
    errno.EHOSTUNREACH: "no route to {where} (host down or off this network)",
    errno.ENETUNREACH: "network unreachable for {where}",
    errno.ECONNRESET: "connection reset by {where}",
}


def _short_error(exc: BaseException, url: str = "") -> str:
    where = url.split("://", 1)[-1] or "the agent"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out: no answer from {where}"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {urllib.parse.urlsplit(url).hostname or where} does not resolve"
    code = getattr(exc, "errno", None)
    if code is None:  # asyncio joins one error per address: "Multiple exceptions: [Errno 111] ..."
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(found.group(1)) if found else None
    if code in _ERRNO_WORDS:
        return _ERRNO_WORDS[code].format(where=where)
    text = str(exc) or type(exc).__name__
    return text[:160]
