"""The alert engine: rules evaluated on every sample, events from the rest of the agent.

Wiring (agent/runtime.py): ``note_frame`` is a sampler listener (pure dict work, no I/O);
``tap`` sees every broadcast frame (guard actions, model_state failures) through the hub;
``incident`` is called once at start. The only I/O is asynchronous and off the sample
path: a task that reads an ended container's exit code and last log lines from the
engine, a slow loop asking the engine whether a watched container's log is silent,
the history write (its own thread) and delivery (its own thread, agent.alerts.delivery).

An alert is ``firing`` until its condition clears (then ``resolved``, same id), or an
``event`` (one-shot: a container exited, the guard acted). Memory holds the firing ones
and the last RECENT; history keeps ``alerts.keep`` across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.alerts.jobs import JobStats, WatchSet, watched
from agent.alerts.rules import OPS, Holder, rule_set, values_at
from agent.alerts.summary import EnergyMeter, SummaryClock, build, next_at
from agent.logs import scrub
from agent.protocol import encode, frame
from agent.settings import AgentSettings, AlertRuleSettings

log = logging.getLogger("sparkdeck.alerts")

RECENT = 200
LOG_TAIL = 20
SILENCE_CHECK_MAX_S = 60.0
ALIVE = ("running", "paused", "restarting")  # a watched job in these has not ended
CONTROL_ONLY = ("log_tail",)  # container logs: control tokens only, as in model_state frames
_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|APIKEY|_KEY$|^KEY$", re.IGNORECASE)


class AlertEngine:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        broadcast: Callable[[str, str | None], None],
        hostname: str,
        containers: Any = None,
        store: Any = None,
        delivery: Any = None,
        secrets: Any = None,
    ):
        self.settings = settings
        self.broadcast = broadcast
        self.hostname = hostname
        self.containers = containers  # ContainerService or None
        self.store = store  # HistoryStore or None
        self.delivery = delivery  # agent.alerts.delivery.Delivery or None
        self.secrets = secrets  # catalog.Secrets: values masked in log tails
        self.rules = rule_set(settings.alerts) if settings.alerts.enabled else []
        self.by_event: dict[str, list[AlertRuleSettings]] = {}
        for r in self.rules:
            if r.event:
                self.by_event.setdefault(r.event, []).append(r)
        self.metric_rules = [r for r in self.rules if r.metric]
        self.holders = {r.name: Holder() for r in self.metric_rules}
        self.firing: dict[tuple[str, str], dict[str, Any]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.next_id = 1
        self.watches = WatchSet(settings.state_dir / "watches.json")
        self.jobs: dict[str, JobStats] = {}  # full id -> stats of a watched container seen running
        self._busy_since: float | None = None
        self._idle_since: float | None = None
        self._was_busy = False
        self._tasks: set[asyncio.Task] = set()
        self._ending: set[str] = set()  # marked containers whose end is being reported
        self._silence_task: asyncio.Task | None = None
        self._summary_task: asyncio.Task | None = None
        self.energy = EnergyMeter()
        self.summary_clock = SummaryClock(settings.state_dir / "summary.json")
        self.started = round(time.time(), 3)  # rounded like alert timestamps, which it is compared with
        self.incidents_source: Callable[[], list[dict[str, Any]]] = lambda: []  # set by the runtime

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self.store is not None:
            for text in reversed(await self.store.alerts(RECENT)):
                with contextlib.suppress(ValueError):
                    alert = json.loads(text)
                    self.recent.append(alert)
                    self.next_id = max(self.next_id, int(alert.get("id", 0)) + 1)
            # a firing alert from the last run is re-evaluated from fresh samples, not resumed
        if self.by_event.get("log_silent") and self.containers is not None:
            self._silence_task = asyncio.create_task(self._silence_loop(), name="alerts-silence")
        if self.by_event.get("summary"):
            self._summary_task = asyncio.create_task(self._summary_loop(), name="alerts-summary")

    async def stop(self) -> None:
        tasks = list(self._tasks) + [t for t in (self._silence_task, self._summary_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.delivery is not None:
            self.delivery.close()

    # -- output ----------------------------------------------------------------------------
    def _emit(self, alert: dict[str, Any], *, notify: bool = True) -> None:
        alert["ts"] = round(time.time(), 3)
        self.recent.append(dict(alert))
        if self.store is not None:
            self.store.save_alert_soon(alert["id"], alert["ts"], json.dumps(alert, separators=(",", ":")), self.settings.alerts.keep)
        out = frame("alert", **alert)
        details = alert.get("details") or {}
        if any(details.get(k) for k in CONTROL_ONLY):
            read = {**out, "details": {k: v for k, v in details.items() if k not in CONTROL_ONLY}}
            self.broadcast(encode(out), encode(read))
        else:
            self.broadcast(encode(out), None)
        if self.delivery is not None and notify:
            self.delivery.submit(alert)
        log.info("alert %s %s%s: %s", alert["rule"], alert["state"], f" ({alert['subject']})" if alert.get("subject") else "", alert["message"])

    def _new(self, rule: AlertRuleSettings, state: str, subject: str | None, message: str, **extra: Any) -> dict[str, Any]:
        alert = {
            "id": self.next_id,
            "rule": rule.name,
            "severity": rule.severity,
            "state": state,
            "subject": subject,
            "message": message,
            "host": self.hostname,
            "since": round(time.time(), 3),
            "resolved_at": None,
            "value": None,
            "threshold": None,
            "details": None,
            **extra,
        }
        self.next_id += 1
        return alert

    def event(self, name: str, subject: str | None, message: str, *, quiet: bool = False, **extra: Any) -> None:
        """quiet: recorded and pushed as an info alert, never notified (an end already told, or asked for)."""
        for rule in self.by_event.get(name, ()):
            alert = self._new(rule, "event", subject, message, **extra)
            if quiet:
                alert["severity"] = "info"
            self._emit(alert, notify=not quiet)

    def _fire(self, rule: AlertRuleSettings, subject: str, message: str, **extra: Any) -> None:
        key = (rule.name, subject)
        if key in self.firing:
            return
        alert = self._new(rule, "firing", subject, message, **extra)
        self.firing[key] = alert
        self._emit(alert)

    def _resolve(self, rule_name: str, subject: str, message: str | None = None) -> None:
        alert = self.firing.pop((rule_name, subject), None)
        if alert is None:
            return
        alert = {**alert, "state": "resolved", "resolved_at": round(time.time(), 3)}
        if message:
            alert["message"] = message
        self._emit(alert)

    def listing(self, *, control: bool, limit: int = 100) -> dict[str, Any]:
        def shown(a: dict[str, Any]) -> dict[str, Any]:
            if control or not a.get("details"):
                return a
            return {**a, "details": {k: v for k, v in a["details"].items() if k not in CONTROL_ONLY}}

        recent = list(self.recent)[-limit:][::-1]
        return {
            "firing": [shown(a) for a in self.firing.values()],
            "recent": [shown(a) for a in recent],
            "rules": [r.model_dump(exclude_none=True) for r in self.rules],
        }

    def info(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.alerts.enabled,
            "rules": len(self.rules),
            "firing": len(self.firing),
            "watched": len(self.jobs),
            "notify": self.delivery.status() if self.delivery is not None else None,
        }

    # -- sampler listener: every frame, no I/O ------------------------------------------
    def note_frame(self, frame: dict[str, Any], _text: str = "") -> None:
        now = float(frame.get("ts") or time.time())
        for rule in self.metric_rules:
            holder = self.holders[rule.name]
            seen = set()
            for subject, value in values_at(frame, rule.metric or ""):
                seen.add(subject)
                state = holder.update(subject, OPS[rule.op](value, rule.value), now, rule.for_s)
                if state is True:
                    self._fire(rule, subject, f"{subject} = {value:g} ({rule.op} {rule.value:g} for {rule.for_s:g} s)", value=value, threshold=rule.value)
                elif state is False:
                    self._resolve(rule.name, subject, f"{subject} = {value:g}, back within {rule.op} {rule.value:g}")
            for subject in [s for s in holder.since if s not in seen]:  # the field went away (GPU lost)
                holder.since.pop(subject, None)
        self._gpu_idle(frame, now)
        self._jobs(frame, now)
        self.energy.add(frame.get("gpus") or ())

    def _gpu_idle(self, frame: dict[str, Any], now: float) -> None:
        rules = self.by_event.get("gpu_idle")
        if not rules:
            return
        utils = [g.get("utilization_percent") for g in frame.get("gpus") or [] if isinstance(g.get("utilization_percent"), (int, float))]
        if not utils:
            return
        rule = rules[0]
        busy = max(utils) > max(rule.value, 0.0)
        if busy:
            self._idle_since = None
            self._busy_since = self._busy_since or now
            if now - self._busy_since >= 60:  # a minute of work makes it a job, not a blip
                self._was_busy = True
            self._resolve(rule.name, "gpu")
            return
        self._busy_since = None
        if not self._was_busy:
            return
        self._idle_since = self._idle_since or now
        if now - self._idle_since >= rule.for_s:
            self._was_busy = False
            for r in rules:
                self._emit(self._new(r, "event", "gpu", f"the GPU has been idle for {r.for_s / 60:g} min after a job: finished?"))

    def _jobs(self, frame: dict[str, Any], now: float) -> None:
        tracker = getattr(self.containers, "tracker", None)
        # engine lost (now, or when this frame was sampled: the tracker may have emptied its list
        # since): an empty list must not read as every job ending
        if tracker is None or tracker.status.get("state") != "ok" or (frame.get("containers_status") or {}).get("state") != "ok":
            return
        rows = {r["id"]: r for r in frame.get("containers") or []}
        gpus = frame.get("gpus") or []
        max_dt = 5 * self.settings.interval_s
        running = set()
        for cid, entry in tracker.entries.items():
            if entry.get("state") not in ALIVE:
                continue
            why = watched(cid, entry, self.watches)
            if why is None:
                continue
            running.add(cid)
            stats = self.jobs.get(cid)
            if stats is None:
                started = tracker.started.get(cid) or now
                stats = self.jobs[cid] = JobStats(name=entry.get("name") or cid[:12], why=why, first_seen=started, model=entry.get("model"))
            stats.add(now, rows.get(cid[:12]), gpus, max_dt)
        for cid in [c for c in self.jobs if c not in running]:
            stats = self.jobs.pop(cid)
            self._ending.add(cid)
            self._spawn(self._ended(cid, stats))
        # marked containers that ended while the agent was not running: notified once, then unmarked
        for cid, mark in list(self.watches.items.items()):
            if cid in running or cid in self.jobs or cid in self._ending:
                continue
            if cid not in tracker.entries:
                self.watches.remove(cid)  # removed meanwhile: nothing left to report on
                continue
            if tracker.entries[cid].get("state") not in ("exited", "dead"):
                continue  # created, not started yet
            self._ending.add(cid)
            stats = JobStats(name=mark.get("name") or cid[:12], why="marked", first_seen=float(mark.get("since") or now))
            self._spawn(self._ended(cid, stats))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ended(self, cid: str, stats: JobStats) -> None:
        """A watched container stopped running: its exit code, run time and last log lines."""
        svc = self.containers
        code = None
        run_s = None
        lines: list[str] = []
        secrets: list[str] = []
        try:
            info = await svc.engine.call("GET", f"containers/{cid}/json", timeout_s=10)
            st = info.get("State") or {}
            if st.get("Running") or st.get("Restarting"):
                self._ending.discard(cid)
                return  # restarted meanwhile (a restart policy): not the end
            code = st.get("ExitCode")
            from agent.containers.tracker import parse_engine_time

            began, ended = parse_engine_time(st.get("StartedAt")), parse_engine_time(st.get("FinishedAt"))
            if began and ended and ended >= began:
                run_s = round(ended - began, 1)
            secrets = _env_secrets((info.get("Config") or {}).get("Env") or [])
            from agent.containers import logs as container_logs

            lines = [x["text"] for x in await asyncio.wait_for(container_logs.tail(svc.engine, cid, LOG_TAIL), 10)]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # removed already (--rm), engine gone: say what is known
            log.info("ended container %s: %s", stats.name, exc)
        for rule in self.by_event.get("log_silent", ()):  # only now: a container seen running again is not ended
            self._resolve(rule.name, stats.name, f"{stats.name} ended")
        if run_s is None and stats.last_ts:
            run_s = round(stats.last_ts - stats.first_seen, 1)
        if cid in self.watches:
            self.watches.remove(cid)
        self._ending.discard(cid)
        details = {
            "container": stats.name,
            "container_id": cid[:12],
            "watched": stats.why,
            "exit_code": code,
            "run_s": run_s,
            **stats.figures(),
            "log_tail": [self._mask(x, secrets) for x in lines[-LOG_TAIL:]],
        }
        how = "was removed" if code is None else f"exited with code {code}"
        # one event, one notification: a stop asked for (the API, a model stop, the guard, which has
        # its own alert) and a model that died while launching (model-failed tells it) are recorded quietly
        requested = tracker_pop(svc, cid)
        launch_failed = not requested and self._launch_failed(stats.model)
        if requested:
            how = "was stopped on request"
        elif launch_failed:
            how += " while launching (model-failed has it)"
        details["ended_by"] = "request" if requested else ("launch" if launch_failed else "itself")
        self.event("container_exit", stats.name, f"{stats.name} {how} after {_duration(run_s)}", quiet=requested or launch_failed, details=details)

    def _launch_failed(self, model: str | None) -> bool:
        """The model's launcher still waits for it to be ready, or has just reported it failed by its exit."""
        launcher = getattr(self.containers, "launcher", None)
        state = (getattr(launcher, "states", {}) or {}).get(model) if model else None
        if not state:
            return False
        return state.get("state") in ("pulling", "starting") or (state.get("state") == "failed" and state.get("exit_code") is not None)

    def _mask(self, line: str, secrets: list[str]) -> str:
        values = list(secrets)
        if self.secrets is not None:
            values += self.secrets.values()
        for v in sorted(set(values), key=len, reverse=True):
            if len(v) >= 4:
                line = line.replace(v, "***")
        return scrub(line)[:1000]

    # -- events from the rest of the agent --------------------------------------------
    def tap(self, text: str) -> None:
        """Every broadcast frame passes here; only two kinds matter, found without parsing the rest."""
        head = text[:40]
        if '"type":"guard"' in head:
            frame = json.loads(text)
            self.event(
                "guard",
                (frame.get("container") or {}).get("name"),
                frame.get("message") or "the memory guard acted",
                value=frame.get("models_available_bytes"),
                details={"result": frame.get("result"), "cause": frame.get("cause")},
            )
        elif '"type":"model_state"' in head and '"state":"failed"' in text:
            frame = json.loads(text)
            details = {"model": frame.get("name"), "exit_code": frame.get("exit_code"), "log_tail": frame.get("log_tail") or []}
            self.event("model_failed", frame.get("name"), f"model {frame.get('name')} failed to start: {frame.get('message')}", details=details)

    def incident(self, incident: dict[str, Any] | None) -> None:
        if incident:
            self.event(
                "incident",
                incident.get("kind"),
                f"the previous agent run ended uncleanly ({incident.get('kind')}): {incident.get('cause_text')}",
                details={"incident_id": incident.get("id")},
            )

    # -- the morning summary ----------------------------------------------------------------
    async def _summary_loop(self) -> None:
        while True:
            for rule in self.by_event["summary"]:
                due = next_at(rule.at or "07:00", time.time())
                while time.time() < due:  # short sleeps: a suspended laptop or a clock change cannot oversleep it
                    await asyncio.sleep(min(60.0, max(0.05, due - time.time())))
                self.summary(rule)

    def summary(self, rule: AlertRuleSettings | None = None) -> None:
        rule = rule or self.by_event["summary"][0]
        now = round(time.time(), 3) + 0.001  # the period is [since, now): every alert stamped so far is in it
        since = max(self.summary_clock.last() or self.started, now - 7 * 86400)
        running = sorted(s.name for s in self.jobs.values())
        message, figures = build(since, now, self.recent, running, self.incidents_source(), self.energy.take())
        self._emit(self._new(rule, "event", "summary", message, details={"summary": figures}))
        try:
            self.summary_clock.mark(now)
        except OSError as exc:
            log.warning("cannot record the summary time: %s", exc)

    # -- watched logs gone quiet -----------------------------------------------------------
    async def _silence_loop(self) -> None:
        rules = self.by_event["log_silent"]
        every = max(1.0, min(SILENCE_CHECK_MAX_S, min(r.for_s for r in rules) / 4))
        while True:
            await asyncio.sleep(every)
            for cid, stats in list(self.jobs.items()):
                for rule in rules:
                    if time.time() - stats.first_seen < rule.for_s:
                        continue
                    try:
                        quiet = await self._silent(cid, rule.for_s)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        continue  # the engine will tell the tracker; nothing to say here
                    if quiet:
                        self._fire(rule, stats.name, f"{stats.name} has written no log line for {rule.for_s / 60:g} min: stalled?")
                    else:
                        self._resolve(rule.name, stats.name, f"{stats.name} is logging again")

    async def _silent(self, cid: str, for_s: float) -> bool:
        params = {"stdout": "1", "stderr": "1", "since": str(int(time.time() - for_s)), "tail": "1"}

        async def first() -> bool:
            async for chunk in self.containers.engine.stream_raw(f"containers/{cid}/logs", params=params):
                if chunk:
                    return False
            return True

        return await asyncio.wait_for(first(), 10)

    # -- the watch route -----------------------------------------------------------------
    def watch(self, full_id: str, name: str) -> bool:
        return self.watches.add(full_id, name)

    def unwatch(self, full_id: str) -> bool:
        return self.watches.remove(full_id)


def tracker_pop(svc: Any, cid: str) -> bool:
    """Whether a stop of this container was asked for (and forget it: one end per request)."""
    requests = getattr(getattr(svc, "tracker", None), "stop_requests", None)
    return requests is not None and requests.pop(cid, None) is not None


def _env_secrets(env: list[str]) -> list[str]:
    out = []
    for item in env:
        key, _, value = str(item).partition("=")
        if value and _SECRET_KEY.search(key):
            out.append(value)
    return out


def _duration(s: float | None) -> str:
    if s is None:
        return "an unknown time"
    s = int(s)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
