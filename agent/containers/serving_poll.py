"""Reads each model server's metrics every INTERVAL_S in its own thread, never on the sampler's path.

The tracker hands over the current targets (``set_targets``, from the event loop) and the
sampler reads ``result(cid)``: both are dictionary swaps, so a server that hangs,
drips bytes or answers a gigabyte costs its own fetch (bounded by TIMEOUT_S in total and
MAX_BODY bytes) and nothing else. Fetches of different servers run side by side in a
small pool, so one slow server does not delay the others' figures.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.containers.serving import Reading, Target, Unreachable, empty, parse_ollama, parse_prometheus, summarize, wanted

log = logging.getLogger("sparkdeck.serving")

INTERVAL_S = 5.0
TIMEOUT_S = 2.0  # connect + whole answer; well inside the interval
MAX_BODY = 2 * 1024 * 1024  # vLLM's full /metrics is ~100 KiB; a server that sends more is not one we read
WORKERS = 4


class FetchError(Exception):
    pass


def fetch(host: str, port: int, path: str, timeout_s: float = TIMEOUT_S, max_body: int = MAX_BODY) -> str:
    """GET http://host:port/path; the body as text. Raises FetchError with a short reason."""
    deadline = time.monotonic() + timeout_s
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Accept": "text/plain, application/json", "User-Agent": "sparkdeck-agent"})
        sock = conn.sock  # getresponse() drops the connection's reference when the server will close
        resp = conn.getresponse()
        if resp.status != 200:
            raise FetchError(f"HTTP {resp.status} from {path}")
        chunks, size = [], 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"answer took longer than {timeout_s:g}s")
            sock.settimeout(max(deadline - time.monotonic(), 0.01))  # each read ends at the overall deadline
            chunk = resp.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_body:
                raise FetchError(f"answer larger than {max_body // 1024 // 1024} MiB")
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")
    except TimeoutError:
        raise FetchError(f"no answer within {timeout_s:g}s") from None
    except ConnectionRefusedError:
        raise FetchError(f"connection refused on {host}:{port}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{type(exc).__name__}: {str(exc)[:120]}") from None
    finally:
        conn.close()


class ServingPoller:
    def __init__(self, interval_s: float = INTERVAL_S):
        self.interval_s = interval_s
        self._targets: dict[str, Target | Unreachable] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._prev: dict[str, tuple[Target, float, Reading]] = {}
        self._prev_lock = threading.Lock()  # the pool's readers and the poll thread's clean-up share it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sparkdeck-serving")

    # -- event-loop side -------------------------------------------------------------
    def set_targets(self, targets: dict[str, Target | Unreachable]) -> None:
        """cid -> Target, or Unreachable for a server whose metrics cannot be read."""
        self._targets = targets
        if self._thread is None and targets:
            self._thread = threading.Thread(target=self._loop, name="sparkdeck-serving-poll", daemon=True)
            self._thread.start()

    def result(self, cid: str) -> dict[str, Any] | None:
        t = self._targets.get(cid)
        if t is None:
            return None
        got = self._results.get(cid)
        return got if got is not None and got["kind"] == t.kind else empty(t.kind, None, t.source)  # not read yet: all null

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- poll thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception:  # never let the thread die: the figures would silently freeze
                log.exception("model-server metrics poll failed")
            self._stop.wait(max(self.interval_s - (time.monotonic() - started), 0.1))

    def poll_once(self) -> None:
        targets = self._targets
        futures = {cid: self._pool.submit(self._read, cid, t) for cid, t in targets.items() if isinstance(t, Target)}
        results: dict[str, dict[str, Any]] = {}
        for cid, t in targets.items():
            if isinstance(t, Unreachable):
                results[cid] = empty(t.kind, t.error, t.source)
        for cid, fut in futures.items():
            try:
                results[cid] = fut.result(timeout=TIMEOUT_S + 1.0)
            except Exception as exc:
                log.warning("model-server metrics of %s: %r", cid[:12], exc)
                results[cid] = empty(targets[cid].kind, f"metrics read failed: {type(exc).__name__}", targets[cid].source)
        with self._prev_lock:
            for gone in [c for c in self._prev if c not in targets]:
                del self._prev[gone]
        self._results = results

    def _read(self, cid: str, t: Target) -> dict[str, Any]:
        try:
            text = fetch(t.host, t.port, t.path)
            reading = parse_ollama(text) if t.kind == "ollama" else parse_prometheus(text, wanted(t.kind))
        except FetchError as exc:
            error = f"{t.host}:{t.port}{t.path}: {exc}"
        except (ValueError, TypeError, KeyError) as exc:
            error = f"unparseable answer from {t.path}: {str(exc)[:120]}"
        else:
            now = time.monotonic()
            with self._prev_lock:
                prev = self._prev.get(cid)
                self._prev[cid] = (t, now, reading)
            base = (prev[1], prev[2]) if prev is not None and prev[0] == t else None
            return summarize(t.kind, t.source, reading, base, now)
        with self._prev_lock:
            self._prev.pop(cid, None)  # no baseline across a gap: the next rate is over one clean window
        return empty(t.kind, error, t.source)
