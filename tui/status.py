"""``sparkdeck status TARGET [--json]``: one-shot summary for scripts.

``StatusReport`` IS the documented JSON schema (``sparkdeck status --schema``
prints it); tests validate real output against it. Exit codes: 0 reachable,
1 unreachable or not ready, 2 usage error, 3 auth failed, 4 incompatible agent.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.protocol import PROTOCOL_VERSION
from tui import format as fmt
from tui.alerts import AlertRules, evaluate
from tui.client import ApiFailure, Target, rest_call

SCHEMA_VERSION: Final = 1  # Final: its type is Literal[1], as StatusReport.schema_version says
EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_AUTH, EXIT_INCOMPATIBLE = 0, 1, 2, 3, 4


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuSummary(_M):
    index: int
    name: str | None
    status: Literal["ok", "error"]
    error: str | None = None
    utilization_percent: float | None
    temperature_c: float | None
    power_w: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    memory_unified: bool
    unsupported: list[str] = Field(description="fields this GPU cannot report (null above, never 0)")


class HostSummary(_M):
    hostname: str
    uptime_s: float
    cpu_percent: float | None
    memory_used_bytes: int
    memory_total_bytes: int
    memory_percent: float
    swap_percent: float


class NoiseSummary(_M):
    index: float | None
    source: str


class ContainersSummary(_M):
    state: Literal["ok", "unavailable", "disabled"]
    message: str
    running: int
    total: int
    models: list[str] = Field(description="names of catalog models with a running container")


class AlertOut(_M):
    severity: Literal["warning", "critical"]
    key: str
    message: str


class StatusReport(_M):
    """The JSON ``sparkdeck status --json`` prints (one object)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    target: str = Field(description="the TARGET as given")
    url: str
    reachable: bool
    state: Literal["ok", "unreachable", "not_ready", "auth_failed", "incompatible"]
    error: str | None = None
    agent_version: str | None = None
    protocol_version: int | None = None
    simulated: bool | None = None
    seq: int | None = None
    ts: float | None = Field(default=None, description="snapshot time, Unix seconds")
    gpu_status: str | None = Field(default=None, description="ok | degraded | unavailable | stalled")
    gpu_message: str | None = None
    host: HostSummary | None = None
    gpus: list[GpuSummary] = Field(default_factory=list)
    noise: NoiseSummary | None = None
    containers: ContainersSummary | None = None
    alerts: list[AlertOut] = Field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"ok": EXIT_OK, "auth_failed": EXIT_AUTH, "incompatible": EXIT_INCOMPATIBLE}.get(self.state, EXIT_UNREACHABLE)


def summarize(target_text: str, url: str, info: dict[str, Any], snap: dict[str, Any], rules: AlertRules) -> StatusReport:
    host = snap["host"]
    gpus = []
    for g in snap.get("gpus") or []:
        mem = g.get("memory") or {}
        gpus.append(
            GpuSummary(
                index=g["index"],
                name=g.get("name"),
                status=g.get("status", "ok"),
                error=g.get("error"),
                utilization_percent=g.get("utilization_gpu_percent"),
                temperature_c=g.get("temperature_c"),
                power_w=g.get("power_w"),
                memory_used_bytes=mem.get("used_bytes"),
                memory_total_bytes=mem.get("total_bytes"),
                memory_unified=bool(mem.get("unified")),
                unsupported=list(g.get("unsupported") or []),
            )
        )
    containers = snap.get("containers") or []
    cstatus = snap.get("containers_status") or {"state": "disabled", "message": "not reported"}
    return StatusReport(
        target=target_text,
        url=url,
        reachable=True,
        state="ok",
        agent_version=info.get("agent_version"),
        protocol_version=info.get("protocol_version"),
        simulated=snap.get("simulated"),
        seq=snap.get("seq"),
        ts=snap.get("ts"),
        gpu_status=(snap.get("gpu_status") or {}).get("state"),
        gpu_message=(snap.get("gpu_status") or {}).get("message"),
        host=HostSummary(
            hostname=host["hostname"],
            uptime_s=host["uptime_s"],
            cpu_percent=host["cpu"].get("percent"),
            memory_used_bytes=host["memory"]["used_bytes"],
            memory_total_bytes=host["memory"]["total_bytes"],
            memory_percent=host["memory"]["percent"],
            swap_percent=host["swap"]["percent"],
        ),
        gpus=gpus,
        noise=NoiseSummary(index=snap["noise"].get("index"), source=snap["noise"].get("source", "none")),
        containers=ContainersSummary(
            state=cstatus.get("state", "disabled"),
            message=cstatus.get("message", ""),
            running=sum(1 for c in containers if c.get("state") == "running"),
            total=len(containers),
            models=sorted({c["model"] for c in containers if c.get("model") and c.get("state") == "running"}),
        ),
        alerts=[AlertOut(severity=a.severity, key=a.key, message=a.message) for a in evaluate(snap, rules)],
    )


def fetch_status(target_text: str, target: Target, rules: AlertRules, timeout: float = 5.0) -> StatusReport:
    def fail(state: str, error: str) -> StatusReport:
        return StatusReport(target=target_text, url=target.url, reachable=state not in ("unreachable",), state=state, error=error)  # type: ignore[arg-type]

    try:
        info = rest_call(target.url, target.token, "GET", "/api/v1/info", timeout=timeout, context=target.ssl)
        if info.get("protocol_version") != PROTOCOL_VERSION:
            return fail("incompatible", f"agent speaks protocol v{info.get('protocol_version')}, this client v{PROTOCOL_VERSION}")
        snap = rest_call(target.url, target.token, "GET", "/api/v1/snapshot", timeout=timeout, context=target.ssl)
    except ApiFailure as exc:
        if exc.status in (401, 403):
            return fail("auth_failed", exc.detail)
        if exc.status == 503:
            return fail("not_ready", exc.detail)
        return fail("unreachable", exc.detail if exc.status == 0 else f"HTTP {exc.status}: {exc.detail}")
    except (AttributeError, TypeError):
        return fail("incompatible", "the agent's answer is not a sparkdeck info object")
    report = summarize(target_text, target.url, info, snap, rules)
    return report


def render_text(r: StatusReport) -> str:
    if r.state != "ok" or r.host is None:
        return f"{r.target}: {r.state.replace('_', ' ')} — {r.error}"
    lines = [
        f"{r.host.hostname} ({r.url})  agent {r.agent_version}{'  [simulated]' if r.simulated else ''}  up {fmt.duration(r.host.uptime_s)}",
        f"  CPU {fmt.pct(r.host.cpu_percent)}   memory {fmt.size(r.host.memory_used_bytes)} / {fmt.size(r.host.memory_total_bytes)} ({r.host.memory_percent:.0f}%)",
    ]
    if not r.gpus:
        lines.append(f"  GPUs: {r.gpu_status} — {r.gpu_message}")
    for g in r.gpus:
        if g.status == "error":
            lines.append(f"  GPU {g.index} {g.name or ''}: error — {g.error}")
            continue
        mem = f"{fmt.size(g.memory_used_bytes)} / {fmt.size(g.memory_total_bytes)}{' unified' if g.memory_unified else ''}"
        lines.append(
            f"  GPU {g.index} {g.name or ''}: {fmt.pct(g.utilization_percent)} util  {fmt.num(g.temperature_c, ' °C')}  {fmt.num(g.power_w, ' W', 1)}  mem {mem}"
        )
    if r.noise:
        lines.append(f"  noise {r.noise.index:.0f}/100 ({r.noise.source})" if r.noise.index is not None else "  noise n/a (no input)")
    if r.containers:
        c = r.containers
        lines.append(
            f"  containers: {c.running} running / {c.total}" + (f"  models: {', '.join(c.models)}" if c.models else "")
            if c.state == "ok"
            else f"  containers: {c.state} — {c.message}"
        )
    for a in r.alerts:
        lines.append(f"  ! {a.severity}: {a.message}")
    return "\n".join(lines)
