"""The wire contract between sparkdeck-agent and its clients.

This module is shared by the agent and the client, so it imports nothing from
FastAPI, NVML, psutil or Textual (tests/unit/test_layering.py enforces it). The agent
builds frames as plain dicts for speed, each through ``frame()`` (which stamps ``type``
and ``v``) and typed by the TypedDicts at the end of this module; the pydantic models
are the schema: they document the protocol, feed the OpenAPI page, let clients parse
frames, and tests validate real agent frames against them with ``extra="forbid"``.

Units are in the field names: ``_bytes``, ``_c`` (degrees Celsius), ``_w``,
``_j``, ``_mhz``, ``_percent``, ``_s``, ``_rpm``. A field the machine cannot
report is ``null``, never a made-up zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROTOCOL_VERSION = 1
STREAM_PATH = "/api/v1/stream"

# A ping's id comes back in the pong: capped so a client cannot make the agent queue
# kilobytes of answers per few bytes it sends (a longer id gets an ``invalid`` error frame).
MAX_PING_ID_CHARS = 128

# WebSocket close codes the agent sends itself (uvicorn sends 1001/1012 on shutdown and 1009
# for a message over ``max_message_bytes``; docs/protocol.md lists them all).
CLOSE_POLICY = 1008  # client flooded the agent with bad messages
CLOSE_UNAUTHORIZED = 4401  # token revoked while the stream was open
CLOSE_FORBIDDEN = 4403  # the client treats it as 4401 (an auth failure, no reconnect)
CLOSE_LOG_END = 1000  # container log stream: the container stopped (a log_end frame came first)
CLOSE_ENGINE_ERROR = 1011  # container log stream: the Docker engine failed mid-stream

Scope = Literal["read", "control"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- client -> agent ---------------------------------------------------------


class _ClientModel(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)  # no "true" for a number, no "5" for 5


class Subscribe(_ClientModel):
    """Replay buffered snapshots after ``since_seq``, then stream every K-th sample."""

    type: Literal["subscribe"]
    since_seq: int | None = Field(default=None, ge=0, le=2**63 - 1)
    every: int = Field(default=1, ge=1, le=3600)


class Ping(_ClientModel):
    """Ask for a ``pong`` frame (round-trip check)."""

    type: Literal["ping"]
    id: int | str | None = None

    @field_validator("id")
    @classmethod
    def _short_id(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and len(v) > MAX_PING_ID_CHARS:
            raise ValueError(f"at most {MAX_PING_ID_CHARS} characters")
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise ValueError("a 64-bit integer")
        return v


ClientMessage = Subscribe | Ping


class ProtocolError(ValueError):
    """A client message the agent cannot accept; ``code`` goes in the error frame."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Parse one client message or raise ProtocolError with a short, safe reason."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary_not_supported", "send JSON text frames, not binary")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", "message must be a JSON object")
    kind = obj.get("type")
    model: type[_ClientModel]
    if kind == "subscribe":
        model = Subscribe
    elif kind == "ping":
        model = Ping
    else:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else "?"
        raise ProtocolError("unknown_type", f"unknown message type {shown!r}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))[:64] or "message"  # an unknown key may be 60 KB long
        raise ProtocolError("invalid", f"{where}: {first.get('msg', 'invalid')}") from None


# ---- agent -> client ---------------------------------------------------------


class GpuMemory(_Model):
    total_bytes: int | None
    used_bytes: int | None
    unified: bool = Field(description="GPU shares system RAM (DGX Spark / GB10); figures come from /proc/meminfo")
    source: Literal["nvml", "meminfo"] | None


class GpuProcess(_Model):
    pid: int
    name: str | None = None
    used_memory_bytes: int | None


class Gpu(_Model):
    index: int
    name: str | None
    uuid: str | None
    status: Literal["ok", "error"]
    error: str | None = None
    utilization_gpu_percent: float | None = None
    utilization_memory_percent: float | None = None
    memory: GpuMemory | None = None
    temperature_c: float | None = None
    temperature_slowdown_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    energy_j: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    fan_percent: float | None = None
    pstate: str | None = None
    throttle_reasons: list[str] | None = None
    processes: list[GpuProcess] | None = None
    unsupported: list[str] = Field(default_factory=list, description="fields this GPU could not report")
    na_reasons: dict[str, str] = Field(default_factory=dict, description="why each unsupported field is n/a")


class GpuStatus(_Model):
    state: Literal["ok", "degraded", "unavailable", "stalled"]
    message: str
    fix: str | None = None
    driver_version: str | None = None
    nvml_version: str | None = None
    simulated: bool = False


class Cpu(_Model):
    percent: float | None
    per_core_percent: list[float] | None
    load_1: float | None
    load_5: float | None
    load_15: float | None
    count: int | None


class MemoryPressure(_Model):
    """/proc/pressure/memory: share of the last 10 s that tasks stalled waiting for memory."""

    some_avg10: float = Field(description="percent of time at least one task stalled")
    full_avg10: float = Field(description="percent of time every non-idle task stalled (the freeze signal)")


class Memory(_Model):
    total_bytes: int
    available_bytes: int = Field(description="MemAvailable")
    used_bytes: int = Field(description="MemTotal - MemAvailable")
    percent: float
    free_bytes: int | None = Field(default=None, description="MemFree: not used for anything, not even cache")
    reclaimable_bytes: int | None = Field(default=None, description="Active(file) + Inactive(file) + SReclaimable: cache the kernel can drop (Shmem excluded)")
    shmem_bytes: int | None = Field(default=None, description="Shmem: tmpfs, /dev/shm, shared anonymous memory; not reclaimable without swap")
    gpu_process_bytes: int | None = Field(default=None, description="sum of NVML per-process GPU memory where memory is unified; null elsewhere")
    reserve_bytes: int = Field(default=0, description="memory.reserve_gib: the safety floor kept free of models")
    models_available_bytes: int | None = Field(default=None, description="available_bytes - reserve_bytes; negative when the reserve is eaten into")
    pressure: MemoryPressure | None = Field(default=None, description="null where the kernel has no PSI")


class Swap(_Model):
    total_bytes: int
    used_bytes: int
    percent: float


class Disk(_Model):
    mount: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    percent: float


class IoRates(_Model):
    read_bytes_s: float | None
    write_bytes_s: float | None


class NetRates(_Model):
    rx_bytes_s: float | None
    tx_bytes_s: float | None
    per_nic: dict[str, dict[str, float]] = Field(default_factory=dict)


class TempSensor(_Model):
    chip: str
    label: str
    current_c: float
    high_c: float | None = None
    critical_c: float | None = None


class FanSensor(_Model):
    chip: str
    label: str
    rpm: float | None = None
    duty_percent: float | None = None
    max_rpm: float | None = None


class PowerSensor(_Model):
    chip: str
    label: str
    power_w: float


class ThermalTrip(_Model):
    type: str = Field(description="the kernel's trip type: active, passive, hot or critical (power-off)")
    temp_c: float | None


class ThermalZone(_Model):
    zone: str = Field(description="sysfs name, e.g. thermal_zone0")
    type: str = Field(description="what the zone measures, e.g. acpitz, cpu-thermal, x86_pkg_temp")
    temp_c: float | None = Field(description="null while the sensor cannot be read")
    trips: list[ThermalTrip]
    critical_margin_c: float | None = Field(description="critical trip °C − temp_c (lowest critical trip); null without a critical trip or a reading")


class HostTelemetry(_Model):
    hostname: str
    uptime_s: float
    cpu: Cpu
    memory: Memory
    swap: Swap
    disks: list[Disk]
    disk_io: IoRates
    net: NetRates
    temperatures: list[TempSensor]
    fans: list[FanSensor]
    power: list[PowerSensor]
    thermal_zones: list[ThermalZone] = Field(default_factory=list, description="every /sys/class/thermal zone (sysfs_root)")


class Noise(_Model):
    index: float | None = Field(description="0 (silent) .. 100 (loudest); null with no input at all")
    source: Literal["fan", "power-thermal", "none"]
    inputs: dict[str, Any]
    dba_estimate: float | None = Field(description="only with a user calibration; never invented")


class ContainerPort(_Model):
    host_ip: str | None
    host_port: int
    container_port: int | None
    protocol: str


class ServedModel(_Model):
    name: str
    size_bytes: int | None
    size_vram_bytes: int | None


class Serving(_Model):
    """A model server's own figures (vLLM, SGLang, llama.cpp, TensorRT-LLM, Ollama), read every 5 s."""

    kind: str = Field(description="vllm, sglang, llama.cpp, trtllm, ollama (unknown: a bad sparkdeck.metrics label)")
    source: Literal["label", "image"] | None = Field(
        description="label: the template's metrics field or a sparkdeck.metrics label; image: guessed from the image name"
    )
    requests_running: int | None = Field(description="requests being served (Ollama: models loaded)")
    requests_waiting: int | None
    kv_cache_usage_percent: float | None
    prompt_tokens_per_s: float | None = Field(description="over the last 5 s window; null on the first read")
    generation_tokens_per_s: float | None
    ttft_p50_s: float | None = Field(description="median time to first token of the requests in the last window; null with none")
    models: list[ServedModel] | None = Field(description="Ollama only: the loaded models (/api/ps)")
    error: str | None = Field(description="why the figures are missing: no answer, HTTP error, unparseable, port not published")


class Container(_Model):
    """One container in a snapshot frame: what a dashboard row needs, with live figures.

    Descriptive fields that never change tick to tick (full id, labels, creation
    time) are in ``ContainerDetail`` (GET /api/v1/containers) instead: NGC images
    carry a kilobyte or more of labels, which would be sent every second.
    """

    id: str = Field(description="short id (12 hex digits, as `docker ps`); every container route accepts it")
    name: str
    image: str | None
    state: str | None = Field(description="created, running, paused, restarting, exited, dead")
    status: str = Field(description="the engine's own words, e.g. 'Up 5 minutes'")
    ports: list[ContainerPort] = Field(description="published host ports")
    health: Literal["healthy", "unhealthy", "starting"] | None
    cpu_percent: float | None = Field(description="100 = one core, as docker stats")
    memory_bytes: int | None = Field(description="usage less inactive page cache, as docker stats")
    memory_limit_bytes: int | None = Field(description="null: no limit")
    net_rx_bytes_s: int | None
    net_tx_bytes_s: int | None
    gpu_memory_bytes: int | None = Field(description="sum over the container's GPU processes; null where unknown")
    model: str | None = Field(description="catalog name when started by the model launcher")
    serving: Serving | None = Field(default=None, description="model-server metrics; null when it is not a model server (or not running)")
    exit_code: int | None = Field(default=None, description="exited/dead containers only: the engine's State.ExitCode")
    finished_at: float | None = Field(default=None, description="exited/dead containers only: when it ended (Unix time, State.FinishedAt)")


class ContainerDetail(Container):
    """A container as GET /api/v1/containers and the action routes answer: the frame's fields and more."""

    full_id: str
    labels: dict[str, str]
    created: float | None = Field(description="Unix time")


class ContainersStatus(_Model):
    state: Literal["ok", "unavailable", "disabled"]
    message: str
    fix: str | None = None


class HostInfo(_Model):
    """Static facts about the machine, sent once in hello and by /api/v1/info."""

    hostname: str
    os: str
    kernel: str
    arch: str
    cpu_model: str | None
    cpu_count: int | None
    boot_time: float
    memory_total_bytes: int


class Hello(_Model):
    type: Literal["hello"]
    v: int
    agent_version: str
    host: HostInfo
    interval_s: float
    scope: Scope
    simulated: bool
    oldest_seq: int | None
    latest_seq: int | None
    incidents: int = Field(default=0, description="incidents kept (GET /api/v1/incidents): earlier runs that did not end cleanly")


class Snapshot(_Model):
    type: Literal["snapshot"]
    v: int
    seq: int
    ts: float
    simulated: bool
    host: HostTelemetry
    gpus: list[Gpu]
    gpu_status: GpuStatus
    noise: Noise
    containers: list[Container]
    containers_status: ContainersStatus


class Backfill(_Model):
    """Sent after the replay a ``subscribe`` with ``since_seq`` asked for."""

    type: Literal["backfill"]
    v: int = PROTOCOL_VERSION
    since_seq: int
    first_seq: int | None
    last_seq: int | None
    count: int
    complete: bool = Field(description="false when the ring no longer held every frame after since_seq")


class PullProgress(_Model):
    """Image pull progress for a model launch (broadcast to every stream client)."""

    type: Literal["pull_progress"]
    v: int = PROTOCOL_VERSION
    model: str
    image: str
    status: str | None
    current_bytes: int | None
    total_bytes: int | None


class ModelState(_Model):
    """A model launch changed state: pulling -> starting -> ready, or failed/stopped (broadcast)."""

    type: Literal["model_state"]
    v: int = PROTOCOL_VERSION
    name: str
    state: Literal["pulling", "starting", "ready", "stopping", "failed", "stopped"]
    message: str | None
    since: float
    container: str | None = None
    url: str | None = None
    exit_code: int | None = None
    log_tail: list[str] | None = Field(default=None, description="last log lines of a container that exited")
    claim_bytes: int | None = Field(default=None, description="memory the launch claimed (template `memory`); null when it declares none")
    fraction_param: str | None = Field(default=None, description="the template's share-of-memory param, e.g. gpu_memory_utilization")
    fraction: float | None = Field(default=None, description="its value for this launch (chosen by the fit check when the param was auto)")
    listen: list[str] | None = Field(default=None, description="host address:port pairs the model's ports are published on")
    endpoint: str | None = Field(default=None, description="the API URL on the agent's machine (template `endpoint` path); only while starting or ready")


class LogLine(_Model):
    """One line on /api/v1/containers/{id}/logs/stream."""

    type: Literal["log"]
    v: int = PROTOCOL_VERSION
    stream: Literal["stdout", "stderr"]
    ts: str | None = Field(description="the engine's RFC 3339 timestamp")
    text: str


class LogEnd(_Model):
    """Last frame of a log stream before close code CLOSE_LOG_END."""

    type: Literal["log_end"]
    v: int = PROTOCOL_VERSION
    reason: str
    exit_code: int | None


class GuardTarget(_Model):
    id: str
    name: str | None
    model: str | None
    memory_bytes: int | None
    gpu_memory_bytes: int | None


class GuardEvent(_Model):
    """The memory guard acted (broadcast to every stream): what it did, to which container, and why."""

    type: Literal["guard"]
    v: int = PROTOCOL_VERSION
    ts: float
    action: Literal["warn", "stop-newest-model", "stop-largest"] = Field(description="the configured memory_guard.action")
    cause: Literal["memory", "pressure"] = Field(description="models_available_bytes < 0, or PSI full pressure held")
    result: Literal["warned", "stopped", "failed", "nothing-eligible"]
    message: str
    available_bytes: int | None = Field(description="MemAvailable when it acted")
    reserve_bytes: int
    models_available_bytes: int | None = Field(description="available - reserve; negative when short")
    full_avg10: float | None = Field(description="PSI memory full avg10 (%); null without PSI")
    container: GuardTarget | None = Field(description="the container stopped (or that failed to stop)")


class MemoryGuardInfo(_Model):
    enabled: bool
    action: Literal["warn", "stop-newest-model", "stop-largest"]
    reserve_bytes: int
    poll_s: float
    psi_full: float
    hold_s: float
    psi_trigger: str = Field(description="'armed: …' with its window, or why the guard polls avg10 only")
    tripped: Literal["memory", "pressure"] | None = Field(description="what is tripping it right now")
    actions: int = Field(description="guard events since the agent started")
    last_event: GuardEvent | None


class ErrorFrame(_Model):
    type: Literal["error"]
    v: int = PROTOCOL_VERSION
    code: str
    message: str


class Pong(_Model):
    type: Literal["pong"]
    v: int = PROTOCOL_VERSION
    id: int | str | None = None


class IncidentGpu(_Model):
    index: int
    utilization_percent: float | None
    temperature_c: float | None
    power_w: float | None
    throttle_reasons: list[str] | None


class IncidentSample(_Model):
    """One sample before an unclean end, compacted from the stored snapshot frame."""

    ts: float
    seq: int
    available_bytes: int | None = Field(description="MemAvailable")
    models_available_bytes: int | None = Field(description="available - memory.reserve_gib (computed where the frame lacks it)")
    psi_some_avg10: float | None = Field(description="/proc/pressure/memory; null without PSI")
    psi_full_avg10: float | None
    hottest_c: float | None = Field(description="hottest GPU or hwmon sensor (noise.ignore_sensors left out)")
    gpus: list[IncidentGpu]


class IncidentFigures(_Model):
    """Extremes over the incident's samples."""

    min_available_bytes: int | None
    min_models_available_bytes: int | None
    max_psi_some_avg10: float | None
    max_psi_full_avg10: float | None
    max_temperature_c: float | None
    temperature_limit_c: float = Field(description="the over-temperature threshold the cause rule used")
    throttle_reasons: list[str] = Field(description="every throttle reason seen in the samples")


class IncidentContainer(_Model):
    id: str
    name: str
    image: str | None
    model: str | None
    memory_bytes: int | None
    gpu_memory_bytes: int | None


class IncidentGuardAction(_Model):
    """A memory-guard entry of the audit log from the run that ended (what it stopped, and when)."""

    time: float
    action: str
    target: str
    result: str
    detail: str | None = None


class Incident(_Model):
    """A previous run of the agent that did not end cleanly (written at the next start)."""

    id: int
    kind: Literal["agent-crash", "host-reboot"] = Field(description="host-reboot: the kernel's boot id changed")
    detected_at: float = Field(description="when the next run found it (Unix time)")
    run_started: float | None = Field(description="when the run that ended uncleanly had started")
    agent_version: str | None
    last_sample_ts: float | None = Field(description="the last sample stored before the end; null without history")
    window_s: float = Field(description="samples cover this many seconds before last_sample_ts")
    cause: Literal["memory", "temperature", "unknown"]
    cause_text: str = Field(description="one line: likely cause and the figure behind it")
    figures: IncidentFigures
    containers: list[IncidentContainer] = Field(description="running at the last sample")
    guard_actions: list[IncidentGuardAction] = Field(default_factory=list, description="memory-guard audit entries of that run, oldest first")
    samples: list[IncidentSample] = Field(description="oldest first; thinned evenly to at most 240")


class IncidentList(_Model):
    """GET /api/v1/incidents: newest first."""

    incidents: list[Incident]
    kept: int = Field(description="at most this many are kept; older ones are dropped")


class ProcessContainer(_Model):
    id: str = Field(description="short id (12 hex digits), as in frames")
    full_id: str
    name: str


class GpuProcessRow(_Model):
    """One GPU compute process (GET /api/v1/processes); a process on two GPUs has a row for each."""

    gpu: int
    gpu_uuid: str | None
    pid: int
    user: str | None = Field(description="owner's name (its uid when the host has no such user)")
    uid: int | None
    name: str | None = Field(description="/proc/PID/comm")
    command: str | None = Field(description="command line, arguments joined by spaces, cut at 512 characters")
    container: ProcessContainer | None
    container_main: bool = Field(description="pid 1 of its pid namespace: a container's main process, deaf to SIGTERM/SIGINT unless it handles them")
    used_gpu_memory_bytes: int | None
    cpu_percent: float | None = Field(description="host CPU, % of one core, since the previous listing (first look: over 0.25 s)")
    rss_bytes: int
    start_time: float | None = Field(description="Unix seconds; also names the process in a signal request")


class ProcessList(_Model):
    processes: list[GpuProcessRow]
    gpu_status: str | None = Field(description="the last sample's gpu_status.state")
    ts: float


class SignalRequest(_Model):
    """POST /api/v1/processes/{pid}/signal."""

    signal: Literal["TERM", "KILL", "INT"]
    wait_s: float = Field(3.0, ge=0, le=30, description="how long to wait for the process to exit")
    start_time: float | None = Field(None, description="the row's start_time: refuse (409 pid_changed) if the pid now names another process")


class SignalResult(_Model):
    pid: int
    signal: Literal["TERM", "KILL", "INT"]
    sent: bool
    result: Literal["exited", "still_running", "gone"]
    waited_s: float
    detail: str


class ThrottleEvent(_Model):
    id: int
    kind: Literal["throttle"]
    gpu: int = Field(description="GPU index")
    gpu_uuid: str | None
    reason: str = Field(description="an NVML clock-event reason, e.g. sw_power_cap, hw_thermal_slowdown")
    start: float = Field(description="Unix time of the first sample with this reason")
    end: float | None = Field(description="Unix time of the first sample without it; null while it lasts")


class EventList(_Model):
    kind: str
    from_: float = Field(alias="from")
    to: float
    events: list[ThrottleEvent]
    truncated: bool = Field(description="more events overlap the range than one answer holds (5,000); narrow it")


class AlertDetails(_Model):
    """What an alert carries beyond its message; which keys depend on the rule."""

    container: str | None = None
    container_id: str | None = None
    watched: Literal["label", "model", "marked"] | None = Field(default=None, description="why the container was watched")
    exit_code: int | None = None
    run_s: float | None = Field(default=None, description="how long the container ran")
    ended_by: Literal["itself", "request", "launch"] | None = Field(
        default=None, description="container-exited: on its own (notified), a stop asked for or a model launch failing (both info, not notified)"
    )
    gpu_time_s: float | None = Field(default=None, description="GPU-busy seconds while the container held GPU memory")
    max_temperature_c: float | None = Field(default=None, description="hottest GPU while it ran")
    throttled_s: float | None = Field(default=None, description="seconds a GPU reported a slowing throttle reason while it ran")
    log_tail: list[str] | None = Field(default=None, description="its last 20 log lines, secrets masked; control tokens only")
    model: str | None = None
    result: str | None = Field(default=None, description="guard: what the memory guard did")
    cause: str | None = None
    incident_id: int | None = None
    summary: dict[str, Any] | None = None


class Alert(_Model):
    """One alert (GET /api/v1/alerts and the ``alert`` frame)."""

    id: int
    rule: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["firing", "resolved", "event"] = Field(description="event: one-shot (a container exited), never resolves")
    subject: str | None = Field(description="what it is about: a metric path (gpus.0.temperature_c), a container or model name")
    message: str
    host: str
    since: float = Field(description="when it fired")
    resolved_at: float | None
    ts: float = Field(description="when this state was reached")
    value: float | None
    threshold: float | None
    details: AlertDetails | None


class AlertFrame(Alert):
    type: Literal["alert"]
    v: int = PROTOCOL_VERSION


class AlertList(_Model):
    """GET /api/v1/alerts: firing now, then the recent ones newest first."""

    firing: list[Alert]
    recent: list[Alert]
    rules: list[dict[str, Any]] = Field(description="the rules in force (built-ins merged with [[alerts.rule]])")


class NotifyTarget(_Model):
    target: str = Field(description="scheme and position only (json://…#1): a URL can hold secrets")
    min_severity: str
    error: str | None


class NotifyStatus(_Model):
    targets: list[NotifyTarget]
    sent: int
    failed: int
    retries: int
    dropped_queue: int
    dropped_rate: int
    deduplicated: int
    queued: int
    last_sent: float | None
    last_error: dict[str, Any] | None


class AlertsInfo(_Model):
    enabled: bool
    rules: int
    firing: int
    watched: int = Field(description="watched containers running now")
    notify: NotifyStatus | None


class Info(_Model):
    agent_version: str
    protocol_version: int
    host: HostInfo
    interval_s: float
    simulated: bool
    gpu_status: GpuStatus
    buffered_snapshots: int
    oldest_seq: int | None
    latest_seq: int | None
    stream_clients: int
    stream_frames_dropped: int = Field(description="frames dropped for connected clients that fell behind")
    process: dict[str, int] = Field(description="the agent's rss_bytes, fds, asyncio tasks and threads")
    memory_guard: MemoryGuardInfo | None = None
    alerts: AlertsInfo | None = None


# ---- the frames as the agent builds them ---------------------------------------------
# One TypedDict per frame the agent builds, key for key the pydantic model named in its
# docstring (tests/unit/test_frames.py checks every one against it). Nested parts the
# sampler and the collectors assemble stay ``dict[str, Any]``: their schema is the model.

Json = dict[str, Any]


class HelloFrame(TypedDict):
    """``Hello``"""

    type: Literal["hello"]
    v: int
    agent_version: str
    host: Json
    interval_s: float
    scope: Scope
    simulated: bool
    oldest_seq: int | None
    latest_seq: int | None
    incidents: int


class SnapshotFrame(TypedDict):
    """``Snapshot``"""

    type: Literal["snapshot"]
    v: int
    seq: int
    ts: float
    simulated: bool
    host: Json
    gpus: list[Json]
    gpu_status: Json
    noise: Json
    containers: list[Json]
    containers_status: Json


class BackfillFrame(TypedDict):
    """``Backfill``"""

    type: Literal["backfill"]
    v: int
    since_seq: int
    first_seq: int | None
    last_seq: int | None
    count: int
    complete: bool


class ErrorFrameDict(TypedDict):
    """``ErrorFrame``"""

    type: Literal["error"]
    v: int
    code: str
    message: str


class PongFrame(TypedDict):
    """``Pong``"""

    type: Literal["pong"]
    v: int
    id: int | str | None


class PullProgressFrame(TypedDict):
    """``PullProgress``"""

    type: Literal["pull_progress"]
    v: int
    model: str
    image: str
    status: str | None
    current_bytes: int | None
    total_bytes: int | None


class ModelStateFrame(TypedDict):
    """``ModelState``: the launcher's per-model state, whatever keys that state holds now."""

    type: Literal["model_state"]
    v: int
    name: str
    state: Literal["pulling", "starting", "ready", "failed", "stopping", "stopped"]
    message: str | None
    since: float
    container: NotRequired[str | None]
    endpoint: NotRequired[str | None]
    url: NotRequired[str | None]
    exit_code: NotRequired[int | None]
    log_tail: NotRequired[list[str] | None]
    claim_bytes: NotRequired[int | None]
    fraction_param: NotRequired[str | None]
    fraction: NotRequired[float | None]
    listen: NotRequired[list[str] | None]


class LogFrame(TypedDict):
    """``LogLine``"""

    type: Literal["log"]
    v: int
    stream: Literal["stdout", "stderr"]
    ts: str | None
    text: str


class LogEndFrame(TypedDict):
    """``LogEnd``"""

    type: Literal["log_end"]
    v: int
    reason: str
    exit_code: int | None


class GuardFrame(TypedDict):
    """``GuardEvent``"""

    type: Literal["guard"]
    v: int
    ts: float
    action: Literal["warn", "stop-newest-model", "stop-largest"]
    cause: Literal["memory", "pressure"]
    result: Literal["warned", "stopped", "failed", "nothing-eligible"]
    message: str
    available_bytes: int | None
    reserve_bytes: int
    models_available_bytes: int | None
    full_avg10: float | None
    container: Json | None


class AlertFrameDict(TypedDict):
    """``AlertFrame``"""

    type: Literal["alert"]
    v: int
    id: int
    rule: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["firing", "resolved", "event"]
    subject: str | None
    message: str
    host: str
    since: float
    resolved_at: float | None
    ts: float
    value: float | None
    threshold: float | None
    details: Json | None


# which model validates each frame type (the tests, and a client that wants to parse one)
FRAME_MODELS: dict[str, type[_Model]] = {
    "hello": Hello,
    "snapshot": Snapshot,
    "backfill": Backfill,
    "error": ErrorFrame,
    "pong": Pong,
    "pull_progress": PullProgress,
    "model_state": ModelState,
    "log": LogLine,
    "log_end": LogEnd,
    "guard": GuardEvent,
    "alert": AlertFrame,
}


# fmt: off
@overload
def frame(type_: Literal["hello"], **fields: Any) -> HelloFrame: ...
@overload
def frame(type_: Literal["snapshot"], **fields: Any) -> SnapshotFrame: ...
@overload
def frame(type_: Literal["backfill"], **fields: Any) -> BackfillFrame: ...
@overload
def frame(type_: Literal["error"], **fields: Any) -> ErrorFrameDict: ...
@overload
def frame(type_: Literal["pong"], **fields: Any) -> PongFrame: ...
@overload
def frame(type_: Literal["pull_progress"], **fields: Any) -> PullProgressFrame: ...
@overload
def frame(type_: Literal["model_state"], **fields: Any) -> ModelStateFrame: ...
@overload
def frame(type_: Literal["log"], **fields: Any) -> LogFrame: ...
@overload
def frame(type_: Literal["log_end"], **fields: Any) -> LogEndFrame: ...
@overload
def frame(type_: Literal["guard"], **fields: Any) -> GuardFrame: ...
@overload
def frame(type_: Literal["alert"], **fields: Any) -> AlertFrameDict: ...
# fmt: on
def frame(type_: str, **fields: Any) -> Any:
    """A frame of ``type_``: ``type`` and ``v`` first, then ``fields`` in the order given
    (the order is what goes on the wire, so a frame's JSON stays the same)."""
    return {"type": type_, "v": PROTOCOL_VERSION, **fields}


def encode(frame: Mapping[str, Any]) -> str:
    """Compact JSON for one frame; the agent calls this once per frame, not per client."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)


def error_frame(code: str, message: str) -> str:
    """An ``error`` frame, encoded."""
    return encode(frame("error", code=code, message=message))


IGNORED_THROTTLE_REASONS = frozenset({"gpu_idle"})  # an idle GPU clocking down is not throttling


def throttle_active(frame: Mapping[str, Any]) -> dict[int, frozenset[str]]:
    """The throttle reasons holding each GPU's clocks down in a snapshot, by GPU index: what opens and closes
    throttle events (the agent's, and the client's cue to fetch them again). A GPU that errored or reports
    no reasons is left out: it neither opens nor closes an event on a guess."""
    out: dict[int, frozenset[str]] = {}
    for g in frame.get("gpus") or ():
        reasons = g.get("throttle_reasons")
        if g.get("status") == "ok" and reasons is not None:
            out[g["index"]] = frozenset(reasons) - IGNORED_THROTTLE_REASONS
    return out
