"""Delivery of alerts through Apprise, on one worker thread with a bounded queue.

The event loop only routes, de-duplicates, rate-limits and enqueues (a few dict look-ups);
Apprise, its HTTP and the retries with backoff run on the ``sparkdeck-notify`` thread, so a
receiver that hangs or answers 500 costs that thread time and nothing else. A full queue
drops the newest notification and counts it.

Secrets: a URL may hold ``${VAR}``, resolved like model env (the agent's environment, then
secrets.env). Resolved URLs never leave this module: logs, frames, /api/v1/info and the
status file name a target by its scheme and position only (``json://…#1``), and Apprise's own
log lines pass a filter that masks every resolved URL and secret value.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import statefiles
from agent.alerts.rules import at_least
from agent.settings import NotifySettings

log = logging.getLogger("sparkdeck.notify")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TYPES = {"info": "info", "warning": "warning", "critical": "failure", "resolved": "success"}
STATUS_FILE = "notify-status.json"


def redacted(url: str, index: int) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme}://…#{index}"


class Target:
    def __init__(self, template: str, min_severity: str, index: int, lookup: Callable[[str], str | None]):
        self.name = redacted(template, index)
        self.min_severity = min_severity
        self.error: str | None = None
        self.secrets: list[str] = []
        missing = []

        def sub(m: re.Match) -> str:
            value = lookup(m.group(1))
            if value is None:
                missing.append(m.group(1))
                return ""
            self.secrets.append(value)
            return value

        self.url = _VAR.sub(sub, template)
        if missing:
            self.error = f"secret {', '.join(sorted(set(missing)))} is not set (agent environment or secrets.env)"
        self.sent_at: deque[float] = deque()  # for the hourly rate limit


class _Scrub(logging.Filter):
    """Masks resolved URLs and secret values in Apprise's own log records."""

    def __init__(self, delivery: Delivery):
        super().__init__()
        self.delivery = delivery

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self.delivery.secret_strings():
            text = text.replace(secret, "***")
        record.msg, record.args = text, None
        return True


class Delivery:
    def __init__(self, settings: NotifySettings, lookup: Callable[[str], str | None], state_dir: Path | None = None):
        self.settings = settings
        self.state_dir = state_dir
        routes = [(u, settings.min_severity) for u in settings.urls] + [(r.url, r.min_severity) for r in settings.routes]
        self.targets = [Target(url, sev, i + 1, lookup) for i, (url, sev) in enumerate(routes)]
        for t in self.targets:
            if t.error:
                log.warning("notify target %s disabled: %s", t.name, t.error)
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue)
        self._thread: threading.Thread | None = None
        self._recent: dict[tuple, float] = {}  # dedupe key -> when it was last queued
        self.counts = {"sent": 0, "failed": 0, "retries": 0, "dropped_queue": 0, "dropped_rate": 0, "deduplicated": 0}
        self.last_error: dict[str, Any] | None = None
        self.last_sent: float | None = None
        # Apprise's info lines and urllib3's debug lines name the endpoints (path included):
        # quieter, and whatever they still say passes the scrub filter
        for name in ("apprise", "urllib3.connectionpool"):
            lg = logging.getLogger(name)
            lg.filters[:] = [f for f in lg.filters if not isinstance(f, _Scrub)]
            lg.addFilter(_Scrub(self))
            lg.setLevel(logging.WARNING)

    def secret_strings(self) -> list[str]:
        out: list[str] = []
        for t in self.targets:
            out.extend(s for s in t.secrets if len(s) >= 3)
            out.append(t.url)
            # a secret can be written into the URL itself (tgram://BOT_TOKEN/CHAT): mask its long parts too
            out.extend(p for p in re.split(r"[/:@?&=#]+", t.url.split("://", 1)[-1]) if len(p) >= 8)
        return sorted(set(out), key=len, reverse=True)  # the whole URL before its parts

    @property
    def enabled(self) -> bool:
        return any(t.error is None for t in self.targets)

    # -- event-loop side: cheap ------------------------------------------------------------
    def submit(self, alert: dict[str, Any]) -> int:
        """Queue an alert for each target that wants it; answers how many were queued. Never blocks."""
        if not self.targets:
            return 0
        state = alert.get("state")
        if state == "resolved" and not self.settings.resolved:
            return 0
        now = time.monotonic()
        key = (alert.get("rule"), alert.get("subject"), state)
        if self.settings.dedupe_s and now - self._recent.get(key, -1e18) < self.settings.dedupe_s:
            self.counts["deduplicated"] += 1
            return 0
        self._recent[key] = now
        if len(self._recent) > 1000:  # bounded: forget the oldest half
            for k in sorted(self._recent, key=self._recent.__getitem__)[:500]:
                del self._recent[k]
        queued = 0
        for t in self.targets:
            if t.error or not at_least(alert.get("severity", "info"), t.min_severity):
                continue
            while t.sent_at and now - t.sent_at[0] > 3600:
                t.sent_at.popleft()
            if len(t.sent_at) >= self.settings.rate_per_hour:
                self.counts["dropped_rate"] += 1
                continue
            try:
                self._queue.put_nowait((t, alert))
            except queue.Full:
                self.counts["dropped_queue"] += 1
                continue
            t.sent_at.append(now)
            queued += 1
        if queued:
            self._ensure_thread()
        return queued

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._worker, name="sparkdeck-notify", daemon=True)
            self._thread.start()

    # -- worker thread -----------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            target, alert = item
            try:
                self._deliver(target, alert)
            except Exception as exc:  # never let the thread die
                self._failed(target, f"{type(exc).__name__}")

    def _deliver(self, target: Target, alert: dict[str, Any]) -> bool:
        title, body = render(alert)
        kind = TYPES["resolved"] if alert.get("state") == "resolved" else TYPES.get(alert.get("severity", "info"), "info")
        delay = self.settings.retry_backoff_s
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self.counts["retries"] += 1
                time.sleep(delay)
                delay *= 2
            if self._send(target, title, body, kind):
                self.counts["sent"] += 1
                self.last_sent = time.time()
                self._write_status()
                return True
        self._failed(target, f"not delivered after {self.settings.retries + 1} attempt(s)")
        return False

    def _send(self, target: Target, title: str, body: str, kind: str) -> bool:
        import apprise  # imported on the worker thread: its plugin scan costs ~0.3 s at first use

        ap = apprise.Apprise()
        t = self.settings.timeout_s
        url = target.url + ("&" if "?" in target.url else "?") + f"cto={t:g}&rto={t:g}"
        if not ap.add(url):
            target.error = "Apprise does not understand this URL"
            return False
        return bool(ap.notify(body=body, title=title, notify_type=kind))

    def _failed(self, target: Target, why: str) -> None:
        self.counts["failed"] += 1
        self.last_error = {"ts": round(time.time(), 3), "target": target.name, "error": why}
        log.warning("notification to %s failed: %s", target.name, why)
        self._write_status()

    def _write_status(self) -> None:
        if self.state_dir is None:
            return
        import json

        try:
            statefiles.write_file(self.state_dir / STATUS_FILE, (json.dumps(self.status()) + "\n").encode())
        except OSError as exc:
            log.debug("cannot write %s: %s", STATUS_FILE, exc)

    # -- synchronous: `sparkdeck-agent notify test` ------------------------------------------
    def send_now(self, title: str, body: str) -> list[tuple[str, bool, str | None]]:
        out: list[tuple[str, bool, str | None]] = []
        for t in self.targets:
            if t.error:
                out.append((t.name, False, t.error))
                continue
            ok = self._deliver(t, {"title": title, "message": body, "severity": "info", "state": "event"})
            out.append((t.name, ok, None if ok else (self.last_error or {}).get("error")))
        return out

    def status(self) -> dict[str, Any]:
        return {
            "targets": [{"target": t.name, "min_severity": t.min_severity, "error": t.error} for t in self.targets],
            **self.counts,
            "queued": self._queue.qsize(),
            "last_sent": self.last_sent,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass  # a daemon thread: it dies with the process


def render(alert: dict[str, Any]) -> tuple[str, str]:
    """Title and body of one notification: plain text, for a phone's lock screen."""
    if "title" in alert and "rule" not in alert:
        return alert["title"], alert.get("message", "")
    host = alert.get("host") or "sparkdeck"
    state = {"firing": "FIRING", "resolved": "resolved", "event": ""}.get(alert.get("state", ""), "")
    title = f"[{host}] {alert.get('severity', 'info').upper()} {alert.get('rule')}" + (f" {state}" if state else "")
    lines = [alert.get("message", "")]
    details = alert.get("details") or {}
    for key in ("exit_code", "run_s", "gpu_time_s", "max_temperature_c", "throttled_s"):
        if details.get(key) is not None:
            lines.append(f"{key}: {details[key]}")
    if details.get("log_tail"):
        lines.append("last log lines:")
        lines.extend(details["log_tail"])
    return title, "\n".join(lines)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """What the running agent last wrote (for doctor)."""
    import json

    try:
        return json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
