"""``sparkdeck-agent doctor``: what the agent can see, and the fix for what it cannot."""

from __future__ import annotations

import http.client
import os
import socket
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from agent import statefiles
from agent.collectors.gpu import GpuCollector
from agent.collectors.host import read_hwmon, read_meminfo
from agent.collectors.memory import GIB, read_memory, reserve_bytes
from agent.collectors.nvml import load_nvml
from agent.collectors.thermal import ThermalZones
from agent.containers.engine import engine_url, unavailable_reason
from agent.settings import AgentSettings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 3.0):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def check_docker(configured: str | None = None) -> Check:
    """Probe the engine the agent will use: ``docker_host``, else $DOCKER_HOST, else the default socket
    (engine_url, as agent.containers.engine resolves it), with the engine client's own reasons."""
    url = engine_url(configured)
    source = "docker_host" if configured else "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the default"
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "unix":
        conn = _UnixHTTPConnection(url.removeprefix("unix://"))
    elif parts.scheme in ("tcp", "http") and parts.hostname:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=3.0)
    else:
        return Check("docker", False, f"unsupported Docker engine address {url} (from {source})", "use unix:///var/run/docker.sock or tcp://HOST:PORT")
    where = url.removeprefix("unix://")
    try:
        conn.request("GET", "/_ping")
        status = conn.getresponse().status
    except OSError as exc:
        message, fix = unavailable_reason(url, f"{type(exc).__name__}: {exc}")
        return Check("docker", False, f"{message} (from {source})", fix)
    finally:
        conn.close()
    if status != 200:
        return Check("docker", False, f"engine at {where} (from {source}) answered {status}", "check that dockerd is running (sudo systemctl status docker)")
    return Check("docker", True, f"engine answers at {where} (from {source})")


def run_checks(settings: AgentSettings, config: str | None = None) -> list[Check]:
    checks: list[Check] = []
    gpu = GpuCollector(load_nvml(settings.simulate), simulated=bool(settings.simulate))
    gpus, status = gpu.collect()
    gpu.close()
    label = " (simulated)" if settings.simulate else ""
    if status["state"] == "unavailable":
        checks.append(Check("nvml", False, status["message"] + label, status.get("fix")))
    else:
        checks.append(Check("nvml", True, f"driver {status.get('driver_version')}, {len(gpus)} GPU(s){label}"))
    for g in gpus:
        if g["status"] != "ok":
            checks.append(Check(f"gpu{g['index']}", False, f"{g['name']}: {g['error']}", "check `nvidia-smi` and `dmesg`"))
            continue
        mem = g.get("memory") or {}
        kind = "unified memory (from /proc/meminfo)" if mem.get("unified") else "dedicated memory" if mem else "memory n/a"
        na = ", ".join(g["unsupported"]) or "none"
        checks.append(Check(f"gpu{g['index']}", True, f"{g['name']}: {kind}; n/a fields: {na}"))
    mem = read_meminfo()
    checks.append(
        Check("meminfo", mem is not None, f"MemTotal {mem[0] / 2**30:.1f} GiB, used {(mem[0] - mem[1]) / 2**30:.1f} GiB" if mem else "/proc/meminfo unreadable")
    )
    picture = read_memory(reserve=reserve_bytes(settings.memory.reserve_gib))
    if picture is not None:
        left = picture["models_available_bytes"]
        psi = "PSI memory pressure readable" if picture["pressure"] is not None else "no PSI (/proc/pressure/memory): pressure will read null"
        checks.append(
            Check(
                "memory",
                left >= 0,
                f"for models {left / GIB:.1f} GiB (MemAvailable less the {settings.memory.reserve_gib:g} GiB reserve); {psi}",
                None if left >= 0 else "less is available than the reserve: stop something, or lower memory.reserve_gib",
            )
        )
    sensors = read_hwmon(str(settings.sysfs_root))
    checks.append(
        Check(
            "sensors",
            bool(sensors["temperatures"]),
            f"{len(sensors['temperatures'])} temperature, {len(sensors['fans'])} fan, {len(sensors['power'])} power sensor(s)",
            None if sensors["temperatures"] else "no hwmon temperature sensors visible (in a container? mount /sys)",
        )
    )
    zones = ThermalZones(str(settings.sysfs_root)).read()
    hot = max((z for z in zones if z["temp_c"] is not None), key=lambda z: z["temp_c"], default=None)
    checks.append(
        Check(
            "thermal",
            True,  # informative: VMs and containers often have none
            f"{len(zones)} thermal zone(s); hottest {hot['type']} {hot['temp_c']:.1f} °C"
            if hot
            else f"no readable thermal zones under {settings.sysfs_root}/class/thermal",
        )
    )
    if not sensors["fans"]:
        checks.append(Check("noise", True, "no fan sensor: the noise index uses the power-thermal model (normal on DGX Spark)"))
    checks.append(check_docker(settings.docker_host) if settings.containers else Check("docker", True, "containers = false: the engine is not watched"))
    state = settings.state_dir
    try:
        statefiles.ensure_dir(state)
        writable = os.access(state, os.W_OK)
    except OSError:
        writable = False
    checks.append(Check("state_dir", writable, str(state), None if writable else f"make {state} writable by the agent's user, or pass --state-dir"))
    checks += check_state_files(settings, config)
    checks += check_notify(settings)
    from agent.auth import TokenStore

    n = len(TokenStore(settings.tokens_file).list())
    checks.append(Check("tokens", n > 0, f"{n} token(s)", None if n else "create one: sparkdeck-agent token add laptop --scope control"))
    safe = settings.loopback or settings.tls_enabled
    checks.append(
        Check(
            "bind",
            safe or settings.insecure,
            f"{settings.host}:{settings.port}" + ("" if settings.loopback else (" with TLS" if settings.tls_enabled else " WITHOUT TLS")),
            None if safe else "bind 127.0.0.1 and reach it over SSH, or configure TLS",
        )
    )
    return checks


def check_state_files(settings: AgentSettings, config: str | None) -> list[Check]:
    """Modes (0600/0700) of everything in the state dir; as root, also its owner (the service user)."""
    from agent import installed

    owner = None
    if os.geteuid() == 0:
        owner = installed.USER if installed.is_service_state(settings.state_dir, config) else None
    problems = statefiles.audit(settings.state_dir, owner)
    checks = [Check("state_files", False, p.what, p.fix) for p in problems]
    if not problems:
        whose = f", owned by {owner}" if owner else ""
        checks.append(Check("state_files", True, f"every file in {settings.state_dir} is 0600 (dirs 0700){whose}"))
    secrets = settings.secrets_file or settings.state_dir / "secrets.env"
    if statefiles.readable_by_others(secrets):
        checks.append(Check("secrets", False, f"{secrets} is readable by other users (it holds HF_TOKEN/NGC keys)", f"chmod 600 {secrets}"))
    return checks


def check_notify(settings: AgentSettings) -> list[Check]:
    """Notification targets (named by scheme and position only: a URL can hold a secret) and the last failed delivery."""
    from agent.alerts.delivery import Delivery, read_status
    from agent.containers.catalog import Secrets

    n = settings.notify
    if not (n.urls or n.routes):
        return [Check("notify", True, "no notification URLs (alerts stay on the agent: GET /api/v1/alerts)")]
    secrets = Secrets(settings.secrets_file or settings.state_dir / "secrets.env")
    checks = []
    for t in Delivery(n, secrets.get).targets:
        checks.append(
            Check(
                "notify",
                t.error is None,
                f"{t.name} ({t.min_severity} and above)" + (f": {t.error}" if t.error else ""),
                "add the secret to secrets.env or the agent's environment" if t.error else None,
            )
        )
    status = read_status(settings.state_dir) or {}
    err = status.get("last_error")
    if err and (status.get("last_sent") or 0) < err.get("ts", 0):
        checks.append(
            Check(
                "notify",
                False,
                f"last delivery to {err.get('target')} failed: {err.get('error')} ({status.get('failed')} failed in all)",
                "check the URL and the endpoint; try it with: sparkdeck-agent notify test",
            )
        )
    return checks


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{'ok ' if c.ok else 'ERR'}  {c.name:<10} {c.detail}")
        if c.fix:
            lines.append(f"     {'':<10} fix: {c.fix}")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
