"""Start and stop catalog models as containers, and follow them to ready or failed.

Everything that can be checked up front (template, params, secrets, port, image
reference, an instance already running) is checked before anything is created,
so a refused launch leaves nothing half-started. A missing image is pulled in the
background with progress frames; then readiness is probed until the health URL
answers 200 (``ready``), the container exits (``failed`` with exit code and last
log lines) or the start-up time-out passes (``failed``). Every state change goes
to stream clients as a ``model_state`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.containers import logs
from agent.containers.audit import clip
from agent.containers.catalog import LOOPBACK, MODEL_LABEL, Catalog, LaunchSpec, ModelTemplate, RenderError, Secrets, render
from agent.containers.engine import Engine, EngineError
from agent.containers.memory_fit import Fit, InsufficientMemory, pending_bytes, plan
from agent.containers.serving import _published
from agent.containers.tracker import ContainerTracker
from agent.protocol import encode, frame

log = logging.getLogger("sparkdeck.models")

PROBE_EVERY_S = 0.5
PROGRESS_EVERY_S = 0.25
LOG_LINES_ON_FAILURE = 20
LOG_LINE_CHARS = 512  # per line of that tail: 20 of them stay well inside a stream client's queue
ENDPOINT_STATES = ("starting", "ready", "running")  # states with a server to talk to; stopped, failed and exited ones show none
CONTROL_ONLY = ("log_tail",)  # what a read token never gets: container logs need a control token
_LOGIN_HINTS = ("unauthorized", "authentication required", "no basic auth credentials", "denied", "login")


class LaunchError(Exception):
    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra  # more fields for the error body (insufficient_memory: needed, free, holders)


def registry_of(image: str) -> str:
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"


def pull_failure(image: str, message: str) -> str:
    """A pull error in words a user can act on; says so when the registry wants a login."""
    registry = registry_of(image)
    if any(h in message.lower() for h in _LOGIN_HINTS):
        extra = " (user $oauthtoken, password: your NGC API key)" if registry == "nvcr.io" else ""
        return f"the registry {registry} needs a login to pull {image}: run `docker login {registry}`{extra} as the agent's user, then start again"
    return f"{image} is not on this machine and pulling it from {registry} failed: {message}"


def port_free(port: int) -> bool:
    """True when nothing listens on the port (what Docker would need to publish it)."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Docker binds: TIME_WAIT leftovers don't count
            try:
                s.bind((addr, port))
            except OSError as exc:
                if exc.errno == 98:  # EADDRINUSE; other errors (no IPv6) say nothing about the port
                    return False
    return True


async def http_status(port: int, path: str, timeout_s: float = 2.0, host: str = LOOPBACK) -> int | None:
    """Status code of GET http://host:port/path, or None when nothing answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (TimeoutError, OSError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    except (TimeoutError, OSError, ValueError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class Launcher:
    def __init__(
        self,
        engine: Engine,
        tracker: ContainerTracker,
        catalog: Catalog,
        secrets: Secrets,
        broadcast: Callable[..., None],
        bind_allowed: list[str] | None = None,
    ):
        self.engine = engine
        self.bind_allowed = list(bind_allowed or [LOOPBACK])
        self.tracker = tracker
        self.catalog = catalog
        self.secrets = secrets
        self.broadcast = broadcast
        self.models_home: Path | None = None  # what `~` in a volume means (settings.models_home)
        self.states: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()
        # () -> (fresh memory picture or None, GPU memory is unified); the runtime sets it
        self.memory_source: Callable[[], tuple[dict[str, Any] | None, bool]] = lambda: (None, False)

    # -- reading ----------------------------------------------------------------------
    def state_of(self, name: str, scope: str = "control") -> dict[str, Any]:
        state = dict(self.states.get(name) or {"state": "idle", "message": None})
        running = [e for e in self.tracker.entries.values() if e.get("model") == name and e["state"] == "running"]
        state["running"] = bool(running)
        state["container"] = running[0]["name"] if running else state.get("container")
        if running and running[0].get("ports"):  # where it really listens, as the engine reports it
            state["listen"] = sorted({f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}" for p in running[0]["ports"]})
        elif "listen" not in state and (t := self.catalog.get(name)) is not None:
            state["listen"] = [f"{t.bind or LOOPBACK}:{port}" for port in sorted(set(t.ports.values()))]
        if scope != "control":
            for key in CONTROL_ONLY:
                state.pop(key, None)
        if state["state"] == "ready" and not running:  # it stopped or died after it was ready
            state["state"], state["message"] = "exited", "the container is no longer running"
        if state["state"] == "idle" and running:  # launched before this agent (re)started: the engine says it runs
            state["state"], state["message"] = "running", "found running when the agent started"
        state["endpoint"] = self._endpoint(name, running[0] if running else None) if state["state"] in ENDPOINT_STATES else None
        return state

    def _endpoint(self, name: str, entry: dict[str, Any] | None, launched_url: str | None = None) -> str | None:
        """The URL clients talk to (template ``endpoint`` path on the health or first port), as reached on this machine.
        ``launched_url``: the health URL of this launch (its port may not be the template's), used before the
        container's published ports are known."""
        t = self.catalog.get(name)
        if t is None or t.endpoint is None or not t.ports:
            return None
        key = t.health.port if t.health else next(iter(t.ports))
        where = _published(entry["ports"], key) if entry and entry.get("ports") else None
        if where is None and launched_url and t.health:  # the health URL is on the same port as the endpoint (key)
            parts = urllib.parse.urlsplit(launched_url)
            if parts.hostname and parts.port:
                where = parts.hostname, parts.port
        if where is None:
            bind = t.bind or LOOPBACK
            where = (LOOPBACK if bind in ("0.0.0.0", "::") else bind), t.ports[key]
        host = f"[{where[0]}]" if ":" in where[0] else where[0]
        return f"http://{host}:{where[1]}{t.endpoint}"

    def catalog_states(self, scope: str = "control") -> list[dict[str, Any]]:
        """Every catalog model with its state, as GET /api/v1/models lists them (control-only fields dropped for read scope)."""
        return [{**t.public(self.secrets), "state": self.state_of(name, scope)} for name, t in sorted(self.catalog.models.items())]

    def _set(self, name: str, state: str, message: str | None, **extra: Any) -> None:
        prev = self.states.get(name, {})
        self.states[name] = {
            "state": state,
            "message": message,
            "since": round(time.time(), 3),
            **{k: prev.get(k) for k in ("container", "url", "listen", "claim_bytes", "fraction_param", "fraction")},
            **extra,
        }
        out = frame("model_state", name=name, **self.states[name])
        if state in ENDPOINT_STATES:
            out["endpoint"] = self._endpoint(name, None, self.states[name].get("url"))
        if any(key in out for key in CONTROL_ONLY):  # read-token streams get the exit code and the reason only
            self.broadcast(encode(out), encode({k: v for k, v in out.items() if k not in CONTROL_ONLY}))
        else:
            self.broadcast(encode(out))
        log.info("model %s: %s%s", name, state, f" ({message})" if message else "")

    # -- start --------------------------------------------------------------------------
    async def start(
        self, name: str, *, params: dict[str, Any] | None = None, port: int | None = None, bind: str | None = None, force: bool = False
    ) -> dict[str, Any]:
        template = self.catalog.get(name)
        if template is None and name in self.catalog.broken:
            raise LaunchError(400, "bad_template", self.catalog.broken[name])
        if template is None:
            raise LaunchError(404, "unknown_model", f"no model {name!r} in the catalog (GET /api/v1/models lists them)")
        async with self._lock:
            task = self._tasks.get(name)
            if task is not None and not task.done():
                raise LaunchError(409, "already_starting", f"model {name!r} is already {self.states[name]['state']}")
            try:
                fit = self._fit(name, template, params or {}, force)
                spec = render(template, self.secrets, params=fit.params, port=port, bind=bind, allowed_binds=self.bind_allowed, home=self.models_home)
            except RenderError as exc:
                raise LaunchError(400, exc.code, exc.message) from None
            try:
                await self._clear_old_instance(name)
                self._check_ports(spec)
                present = await self._image_present(spec.image)
                container = await self._create_and_start(spec) if present else None
            except EngineError as exc:
                raise LaunchError(502 if exc.status >= 500 else 400, "engine_error", spec.redact(exc.message)) from None
            host = f"[{spec.probe_host}]" if ":" in spec.probe_host else spec.probe_host
            url = f"http://{host}:{spec.health_url[0]}{spec.health_url[1]}" if spec.health_url else None
            self.states[name] = {"container": container, "url": url, "listen": spec.listen, **fit.state()}  # the claim is pending from here
            if present:
                self._set(name, "starting", "container started; waiting for it to answer" if url else "container started")
            else:
                self._set(name, "pulling", f"pulling {spec.image}")
            self._tasks[name] = asyncio.create_task(self._follow_up(spec, container), name=f"model-{name}")
            return {**self.state_of(name), "memory_fit": fit.report}

    def _fit(self, name: str, template: ModelTemplate, params: dict[str, Any], force: bool) -> Fit:
        """The memory fit check, under the launch lock so two quick launches see each other's claim."""
        if any(e.get("model") == name and e["state"] == "running" for e in self.tracker.entries.values()):
            raise LaunchError(409, "already_running", f"model {name!r} is already running; stop it first")
        memory, unified = self.memory_source()
        rows = self.tracker.rows()
        try:
            fit = plan(template, params, memory, unified, pending_bytes(self.states, rows, skip=name), rows, force)
        except InsufficientMemory as exc:
            raise LaunchError(409, "insufficient_memory", exc.message, exc.extra) from None
        if fit.report.get("forced"):
            log.warning(
                "model %s: started with force although it needs %d bytes and %d are free for models", name, fit.report["needed_bytes"], fit.report["free_bytes"]
            )
        return fit

    async def _clear_old_instance(self, name: str) -> None:
        for item in await self._instances(name):
            if item.get("State") == "running":
                raise LaunchError(409, "already_running", f"model {name!r} is already running as {item['Names'][0].lstrip('/')}; stop it first")
            await self.engine.call("DELETE", f"containers/{item['Id']}", params={"force": "1"})  # our own stopped instance

    async def _instances(self, name: str) -> list[dict[str, Any]]:
        return await self.engine.call("GET", "containers/json", params={"all": "1", "filters": json.dumps({"label": [f"{MODEL_LABEL}={name}"]})})

    def _check_ports(self, spec: LaunchSpec) -> None:
        for port in spec.host_ports:
            if not port_free(port):
                owner = next((e["name"] for e in self.tracker.entries.values() for p in e["ports"] if p["host_port"] == port), None)
                by = f" by container {owner}" if owner else ""
                raise LaunchError(409, "port_in_use", f"port {port} is already in use on this machine{by}; pass another port")

    async def _image_present(self, image: str) -> bool:
        try:
            await self.engine.call("GET", f"images/{image}/json")
            return True
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise

    async def _create_and_start(self, spec: LaunchSpec) -> str:
        created = await self.engine.call("POST", "containers/create", params={"name": f"sparkdeck-{spec.name}"}, body=json.dumps(spec.body))
        cid = created["Id"]
        try:
            await self.engine.call("POST", f"containers/{cid}/start")
        except EngineError:
            with contextlib.suppress(EngineError):  # nothing half-started stays behind
                await self.engine.call("DELETE", f"containers/{cid}", params={"force": "1"})
            raise
        with contextlib.suppress(EngineError):
            await self.tracker.refresh(cid)
        return cid

    async def _follow_up(self, spec: LaunchSpec, container: str | None) -> None:
        name = spec.name
        try:
            if container is None:
                await self._pull(spec)
                self._check_ports(spec)  # a pull can take long; the port may have been taken meanwhile
                container = await self._create_and_start(spec)
                self.states[name]["container"] = container
                self._set(name, "starting", "container started")
            await self._wait_ready(spec, container)
        except asyncio.CancelledError:
            raise
        except LaunchError as exc:
            self._set(name, "failed", spec.redact(exc.message))
        except EngineError as exc:
            self._set(name, "failed", spec.redact(exc.message))
        except Exception as exc:
            log.exception("model %s: launch failed", name)
            self._set(name, "failed", spec.redact(f"internal error: {type(exc).__name__}"))

    async def _pull(self, spec: LaunchSpec) -> None:
        image, tag = spec.image, None
        if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
            image, tag = image.rsplit(":", 1)
        layers: dict[str, tuple[int, int]] = {}
        last = 0.0
        try:
            async for item in self.engine.stream_lines("POST", "images/create", params={"fromImage": image, "tag": tag or "latest"}):
                if item.get("error") or item.get("errorDetail"):
                    raise EngineError(500, str(item.get("error") or item["errorDetail"].get("message")))
                detail, layer = item.get("progressDetail") or {}, item.get("id")
                if layer and item.get("status") == "Downloading" and detail.get("total"):
                    layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
                elif layer in layers:  # downloaded; extraction figures count other (uncompressed) bytes
                    layers[layer] = (layers[layer][1], layers[layer][1])
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY_S:
                    last = now
                    self._progress(spec, item.get("status"), layers)
        except EngineError as exc:
            raise LaunchError(502, "pull_failed", pull_failure(spec.image, exc.message)) from None
        self._progress(spec, "pulled", layers)

    def _progress(self, spec: LaunchSpec, status: str | None, layers: dict[str, tuple[int, int]]) -> None:
        progress = frame(
            "pull_progress",
            model=spec.name,
            image=spec.image,
            status=status,
            current_bytes=sum(c for c, _ in layers.values()) if layers else None,
            total_bytes=sum(t for _, t in layers.values()) if layers else None,
        )
        self.broadcast(encode(progress))

    async def _wait_ready(self, spec: LaunchSpec, cid: str) -> None:
        deadline = time.monotonic() + spec.startup_timeout_s
        while True:
            info = await self.engine.call("GET", f"containers/{cid}/json")
            st = info.get("State") or {}
            if not st.get("Running"):
                code = st.get("ExitCode")
                lines = await self._last_lines(spec, cid)
                self._set(spec.name, "failed", f"the container exited with code {code}", exit_code=code, log_tail=lines)
                return
            if spec.health_url is None or await http_status(*spec.health_url, host=spec.probe_host) == 200:
                self._set(spec.name, "ready", "answering" if spec.health_url else "running (no health URL in the template)")
                return
            if time.monotonic() > deadline:
                url = self.states[spec.name].get("url")
                self._set(
                    spec.name,
                    "failed",
                    f"not ready after {spec.startup_timeout_s:.0f} s: {url} never answered 200; the container is left running for you to inspect",
                )
                return
            await asyncio.sleep(PROBE_EVERY_S)

    async def _last_lines(self, spec: LaunchSpec, cid: str) -> list[str]:
        # redact before cutting: a secret across the cut would keep its start unredacted
        try:
            return [clip(spec.redact(f"{x['stream']}: {x['text']}"), LOG_LINE_CHARS) for x in await logs.tail(self.engine, cid, LOG_LINES_ON_FAILURE)]
        except EngineError:
            return []

    # -- stop -----------------------------------------------------------------------------
    async def stop(self, name: str, timeout_s: int = 10) -> dict[str, Any]:
        if self.catalog.get(name) is None:
            raise LaunchError(404, "unknown_model", f"no model {name!r} in the catalog")
        task = self._tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        running = [i for i in await self._instances(name) if i.get("State") == "running"]
        if not running and task is None:
            raise LaunchError(409, "not_running", f"model {name!r} is not running")
        if running:  # clients show it at once; the engine's stop can take its whole timeout
            self._set(name, "stopping", f"stopping {len(running)} container(s)")
        for item in running:
            self.tracker.note_stop_request(item["Id"])  # asked for: the alert engine does not notify it as an exit
            await self.engine.call("POST", f"containers/{item['Id']}/stop", params={"t": str(timeout_s)}, timeout_s=timeout_s + 30)
            with contextlib.suppress(EngineError):
                await self.tracker.refresh(item["Id"])
        self._set(name, "stopped", "stopped on request")
        return self.state_of(name)

    def stopped_by_guard(self, name: str, message: str) -> None:
        """The memory guard stopped this model's container: its state is ``stopped`` with the
        guard's reason, not ``failed`` (the follow-up would otherwise report an exit)."""
        if name not in self.states:
            return  # not launched by this agent: nothing to update
        task = self._tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
        self._set(name, "stopped", message)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = {}
