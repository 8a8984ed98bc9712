"""SQLite history in three tiers, written by one worker thread, never by the event loop.

  frames  every sample (compressed frame + its flattened series) for ``raw_s`` (1 h):
          the ring is reloaded from here after a restart, so backfill spans restarts
  agg10   10 s min/avg/max per series for ``tier10_s`` (24 h)
  agg60   1 min min/avg/max per series for ``tier60_s`` (30 days)

Durability: WAL with ``synchronous=NORMAL`` makes a commit cheap and safe against the agent
being killed (the OS has the pages), but fsyncs only at checkpoints (every 1,000 pages:
~13 KB of WAL per frame makes that ~5 minutes at 1 Hz). A Spark that freezes and is power-cycled loses whatever was not fsynced,
and those are the samples an incident needs, so after a frame is published the WAL file is
fsynced at most every ``fsync_every_s`` (1 s: each frame at 1 Hz), on this store's thread,
off the publish path (``sync_soon``). Cost: ``python bench/bench.py --fsync``.

Disk is bounded by the retention windows (pruned in the background). Any storage
failure — disk full, database locked, a corrupt file — is logged and reported in
``status``; the live stream never waits on it. A corrupt file is moved aside and a
fresh one started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent import statefiles

log = logging.getLogger("sparkdeck.history")

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, blob BLOB NOT NULL, series TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS frames_ts ON frames (ts);
CREATE TABLE IF NOT EXISTS agg10 (ts INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agg60 (ts INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, start REAL NOT NULL, end REAL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_start ON events (start);
CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, ts REAL NOT NULL, data TEXT NOT NULL);
"""
TIERS = (("agg10", 10), ("agg60", 60))
WRITE_TIMEOUT_S = 0.25  # the sampler waits at most this long for a frame to be stored
MAX_PENDING_EVENT_WRITES = 256  # throttle-event batches queued while the store is slow; more are dropped
FSYNC_EVERY_S = 1.0  # the WAL reaches the disk at least this often while frames are written


class _Bucket:
    """min/sum/max/count per series for one time bucket."""

    def __init__(self, start: int):
        self.start = start
        self.acc: dict[str, list[float]] = {}

    def add(self, series: dict[str, float]) -> None:
        for k, v in series.items():
            a = self.acc.get(k)
            if a is None:
                self.acc[k] = [v, v, v, 1]
            else:
                a[0] = min(a[0], v)
                a[1] += v
                a[2] = max(a[2], v)
                a[3] += 1

    def row(self) -> str:
        return json.dumps({k: [round(a[0], 3), round(a[1] / a[3], 3), round(a[2], 3)] for k, a in self.acc.items()}, separators=(",", ":"))


class HistoryStore:
    def __init__(self, path: Path, *, raw_s: float = 3600, tier10_s: float = 86400, tier60_s: float = 30 * 86400, fsync_every_s: float = FSYNC_EVERY_S):
        self.path = Path(path)
        self.fsync_every_s = fsync_every_s
        self._synced_at = -math.inf  # monotonic time of the last WAL fsync (or its scheduling)
        self._clock = time.monotonic
        self.fsyncs = 0
        self.raw_s, self.tier10_s, self.tier60_s = raw_s, tier10_s, tier60_s
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="sparkdeck-history")
        self._conn: sqlite3.Connection | None = None
        self._buckets: dict[str, _Bucket] = {}
        self.status: dict[str, Any] = {"state": "ok", "message": "not opened yet"}
        self.writes_failed = 0
        self.writes_dropped = 0
        self._pending: asyncio.Future | None = None
        self._event_writes = 0  # event batches queued on the store's thread
        self._event_lock = threading.Lock()

    # -- thread side ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # Created 0600 before SQLite opens it: SQLite gives -wal/-shm the main file's mode and owner.
            try:
                os.close(statefiles.open_file(self.path, os.O_RDWR))
            except OSError as exc:  # reported like any storage failure; the stream goes on
                raise sqlite3.OperationalError(f"cannot open {self.path}: {exc.strerror}") from None
            conn = sqlite3.connect(self.path, timeout=0.1, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
                for suffix in ("-wal", "-shm"):  # left over from an agent that ran with another umask
                    statefiles.secure_existing(Path(str(self.path) + suffix))
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
            self.status = {"state": "ok", "message": f"history in {self.path}"}
        return self._conn

    def _guard(self, what: str, fn, *args):
        """Run fn(conn, *args); on failure log, report, and recover a corrupt file."""
        try:
            return fn(self._connect(), *args)
        except sqlite3.OperationalError as exc:  # locked, disk full, read-only: transient, keep the file
            self.writes_failed += 1
            self.status = {"state": "degraded", "message": f"history {what} failed: {exc}"}
            log.warning("history %s failed: %s (live stream unaffected)", what, exc)
            self._rollback()
        except sqlite3.DatabaseError as exc:  # malformed / not a database: move aside, start fresh
            self.writes_failed += 1
            self._recover(exc)
        return None

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def _recover(self, exc: Exception) -> None:
        self._disconnect()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                try:
                    src.rename(str(aside) + suffix)
                except OSError:
                    src.unlink(missing_ok=True)
        log.error("history database %s is unusable (%s); moved it to %s and started a fresh one", self.path, exc, aside)
        self.status = {"state": "degraded", "message": f"history file was corrupt; moved to {aside.name}, started fresh"}

    def _append(self, conn: sqlite3.Connection, seq: int, ts: float, blob: bytes, series: dict[str, float]) -> bool:
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?)", (seq, ts, blob, json.dumps(series, separators=(",", ":"))))
        for table, width in TIERS:
            start = int(ts // width * width)
            bucket = self._buckets.get(table)
            if bucket is not None and bucket.start != start:
                conn.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (bucket.start, bucket.row()))
                bucket = None
            if bucket is None:
                bucket = self._buckets[table] = _Bucket(start)
            bucket.add(series)
        conn.execute("COMMIT")
        if self.status["state"] != "ok":
            self.status = {"state": "ok", "message": f"history in {self.path} (recovered)"}
        return True

    def _prune(self, conn: sqlite3.Connection, now: float) -> int:
        conn.execute("BEGIN")
        n = conn.execute("DELETE FROM frames WHERE ts < ?", (now - self.raw_s,)).rowcount
        n += conn.execute("DELETE FROM agg10 WHERE ts < ?", (now - self.tier10_s,)).rowcount
        n += conn.execute("DELETE FROM agg60 WHERE ts < ?", (now - self.tier60_s,)).rowcount
        n += conn.execute("DELETE FROM events WHERE end IS NOT NULL AND end < ?", (now - self.tier60_s,)).rowcount
        conn.execute("COMMIT")
        return n

    def _recent(self, conn: sqlite3.Connection, since_ts: float) -> list[tuple[int, float, bytes]]:
        return conn.execute("SELECT seq, ts, blob FROM frames WHERE ts >= ? ORDER BY seq", (since_ts,)).fetchall()

    def _after(self, conn: sqlite3.Connection, seq: int, below: int | None, limit: int) -> list[tuple[int, float, bytes]]:
        hi = below if below is not None else 2**62
        return conn.execute("SELECT seq, ts, blob FROM frames WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?", (seq, hi, limit)).fetchall()

    def _sync(self, conn: sqlite3.Connection) -> bool:
        # fsync works on the file, whichever descriptor: the WAL holds every commit since the
        # last checkpoint, and a checkpoint syncs the main file itself before reusing the WAL
        wal = Path(f"{self.path}-wal")
        try:
            fd = os.open(wal if wal.exists() else self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.writes_failed += 1
            log.warning("history fsync failed: %s (frames are committed; a power cut may lose the last ones)", exc)
            return False
        self.fsyncs += 1
        return True

    def _run_frames(self, conn: sqlite3.Connection, since_ts: float, window_s: float) -> list[tuple[int, float, bytes]]:
        last = conn.execute("SELECT MAX(ts) FROM frames WHERE ts >= ?", (since_ts,)).fetchone()[0]
        if last is None:
            return []
        return conn.execute("SELECT seq, ts, blob FROM frames WHERE ts >= ? ORDER BY seq", (max(since_ts, last - window_s),)).fetchall()

    def _write_events(self, conn: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)",
            [(e["id"], e["kind"], e["start"], e["end"], json.dumps(e, separators=(",", ":"))) for e in events],
        )

    def _events(self, conn: sqlite3.Connection, start: float, end: float, limit: int) -> list[dict[str, Any]]:
        rows = conn.execute("SELECT data FROM events WHERE start <= ? AND (end IS NULL OR end >= ?) ORDER BY start, id LIMIT ?", (end, start, limit)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _close_open_events(self, conn: sqlite3.Connection) -> int:
        # an event the last run left open ended, at the latest, with that run's last frame
        last = conn.execute("SELECT MAX(ts) FROM frames").fetchone()[0]
        rows = conn.execute("SELECT data FROM events WHERE end IS NULL").fetchall()
        closed = []
        for (data,) in rows:
            e = json.loads(data)
            e["end"] = max(e["start"], last or e["start"])
            closed.append(e)
        if closed:
            self._write_events(conn, closed)
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    def _save_alert(self, conn: sqlite3.Connection, alert_id: int, ts: float, data: str, keep: int) -> bool:
        # one row per alert, replaced when it resolves; only the newest ``keep`` stay
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?)", (alert_id, ts, data))
        conn.execute("DELETE FROM alerts WHERE id <= ?", (alert_id - keep,))
        conn.execute("COMMIT")
        return True

    def _alerts(self, conn: sqlite3.Connection, limit: int) -> list[str]:
        return [r[0] for r in conn.execute("SELECT data FROM alerts ORDER BY id DESC LIMIT ?", (limit,))]

    def _min_seq(self, conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT COALESCE(MIN(seq), 0) FROM frames").fetchone()[0]

    def _max_seq(self, conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM frames").fetchone()[0]

    def _query(self, conn: sqlite3.Connection, names: list[str], start: float, end: float, step: float) -> dict[str, Any]:
        now = time.time()
        if start >= now - self.raw_s:
            tier, res = "raw", 0.0
            rows = conn.execute("SELECT ts, series FROM frames WHERE ts >= ? AND ts <= ? ORDER BY ts", (start, end)).fetchall()
            points = [(ts, {k: (v, v, v) for k, v in json.loads(data).items()}) for ts, data in rows]
        else:
            tier, res = ("agg10", 10.0) if start >= now - self.tier10_s else ("agg60", 60.0)
            rows = conn.execute(f"SELECT ts, data FROM {tier} WHERE ts >= ? AND ts <= ? ORDER BY ts", (start, end)).fetchall()
            points = [(ts, {k: tuple(v) for k, v in json.loads(data).items()}) for ts, data in rows]
            # the bucket still being filled is in memory, not yet in the table
            live = self._buckets.get(tier)
            if live is not None and start <= live.start <= end:
                points.append((live.start, {k: (a[0], a[1] / a[3], a[2]) for k, a in live.acc.items()}))
        step = max(step, res, 1.0)
        series: dict[str, dict[str, list]] = {}
        for name in names:
            buckets: dict[int, list[float]] = {}
            for ts, values in points:
                v = values.get(name)
                if v is None:
                    continue
                b = buckets.setdefault(int((ts - start) // step), [math.inf, 0.0, -math.inf, 0])
                b[0] = min(b[0], v[0])
                b[1] += v[1]
                b[2] = max(b[2], v[2])
                b[3] += 1
            keys = sorted(buckets)
            series[name] = {
                "ts": [round(start + k * step, 3) for k in keys],
                "min": [round(buckets[k][0], 3) for k in keys],
                "avg": [round(buckets[k][1] / buckets[k][3], 3) for k in keys],
                "max": [round(buckets[k][2], 3) for k in keys],
            }
        return {"from": start, "to": end, "step": step, "tier": tier, "series": series}

    # -- event-loop side --------------------------------------------------------------
    async def _run(self, what: str, fn, *args, timeout: float | None = None):
        fut = asyncio.get_running_loop().run_in_executor(self._exec, self._guard, what, fn, *args)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self.status = {"state": "degraded", "message": f"history {what} slower than {timeout}s"}
            return None

    async def append(self, seq: int, ts: float, blob: bytes, series: dict[str, float]) -> bool:
        """Store one frame. Healthy: wait (bounded) so what is published is on disk first.
        Degraded: do not wait at all, and drop the frame if the last write is still stuck."""
        if self.status["state"] == "ok":
            return bool(await self._run("write", self._append, seq, ts, blob, series, timeout=WRITE_TIMEOUT_S))
        if self._pending is not None and not self._pending.done():
            self.writes_dropped += 1
            return False
        self._pending = asyncio.get_running_loop().run_in_executor(self._exec, self._guard, "write", self._append, seq, ts, blob, series)
        return False

    def sync_soon(self) -> None:
        """Queue an fsync of what is committed, if the last one is ``fsync_every_s`` old; never waits.

        Queued behind the frame's own write on the store's one thread, so it covers that frame."""
        now = self._clock()
        # 10 % slack: at 1 Hz a frame that comes a hair under a second after the last fsync
        # must not wait for the next one (that would halve the cadence)
        if now - self._synced_at < self.fsync_every_s * 0.9 or self.status["state"] != "ok":
            return
        self._synced_at = now
        try:
            self._exec.submit(self._guard, "fsync", self._sync)
        except RuntimeError:
            pass  # closing: close() checkpoints and syncs anyway

    async def run_frames(self, since_ts: float, window_s: float) -> list[tuple[int, float, bytes]]:
        """Frames from the last ``window_s`` before the newest frame stored at or after ``since_ts``."""
        return await self._run("read", self._run_frames, since_ts, window_s) or []

    async def prune(self) -> int:
        return await self._run("prune", self._prune, time.time()) or 0

    async def recent(self, seconds: float) -> list[tuple[int, float, bytes]]:
        return await self._run("read", self._recent, time.time() - seconds) or []

    async def frames_after(self, seq: int, below: int | None = None, limit: int = 500) -> list[tuple[int, float, bytes]]:
        """Stored frames with seq in (seq, below), oldest first: backfill older than the ring."""
        return await self._run("read", self._after, seq, below, limit) or []

    def write_events(self, events: list[dict[str, Any]]) -> None:
        """Store new or closed events on the store's thread; never waits (the sampler calls this).
        While the store is stuck at most MAX_PENDING_EVENT_WRITES batches wait; later ones are dropped."""
        with self._event_lock:  # counted up on the loop, down on the store's thread
            if self._event_writes >= MAX_PENDING_EVENT_WRITES:
                self.writes_dropped += 1
                return
            self._event_writes += 1

        def write() -> None:
            try:
                self._guard("event write", self._write_events, events)
            finally:  # counted down even when the store could not be opened
                with self._event_lock:
                    self._event_writes -= 1

        try:
            self._exec.submit(write)
        except RuntimeError:
            pass  # closing

    async def events(self, start: float, end: float, limit: int) -> list[dict[str, Any]] | None:
        return await self._run("read", self._events, start, end, limit)

    async def close_open_events(self) -> int:
        """Close events left open by the last run; the highest event id stored."""
        return await self._run("write", self._close_open_events) or 0

    def save_alert_soon(self, alert_id: int, ts: float, data: str, keep: int) -> None:
        """Store an alert on the store's thread; never waits (alerts are also kept in memory)."""
        try:
            self._exec.submit(self._guard, "alert write", self._save_alert, alert_id, ts, data, keep)
        except RuntimeError:
            pass  # closing

    async def alerts(self, limit: int) -> list[str]:
        """Stored alerts as JSON text, newest first."""
        return await self._run("read", self._alerts, limit) or []

    async def min_seq(self) -> int:
        return await self._run("read", self._min_seq) or 0

    async def max_seq(self) -> int:
        return await self._run("read", self._max_seq) or 0

    async def query(self, names: list[str], start: float, end: float, step: float) -> dict[str, Any] | None:
        return await self._run("query", self._query, names, start, end, step)

    def close(self) -> None:
        self._exec.submit(self._disconnect)  # on the store's own thread, after any pending write
        self._exec.shutdown(wait=True, cancel_futures=False)
