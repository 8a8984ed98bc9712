"""Agent configuration: a TOML file, then ``SPARKDECK_*`` environment, then flags.

Flags win over the environment, which wins over the file. Nested tables map to
``SPARKDECK_<TABLE>__<FIELD>`` (e.g. ``SPARKDECK_NOISE__IDLE_DBA=18``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from agent.collectors.noise import NoiseConfig

DEFAULT_PORT = 8611


def default_state_dir() -> Path:
    """$SPARKDECK_STATE_DIR is read by the settings; this is the fallback after it."""
    if os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "sparkdeck"


def default_config_file() -> Path | None:
    for base in (os.environ.get("CONFIGURATION_DIRECTORY"), os.environ.get("XDG_CONFIG_HOME"), os.path.expanduser("~/.config")):
        if base:
            path = Path(base.split(":")[0]) / ("agent.toml" if "CONFIGURATION_DIRECTORY" in os.environ else "sparkdeck/agent.toml")
            if path.is_file():
                return path
    return None


class NoiseSettings(BaseModel):
    idle_dba: float | None = None
    """Measured sound level at idle (dBA). With load_dba it turns the noise index into a dBA estimate."""
    load_dba: float | None = None
    """Measured sound level at full load (dBA)."""
    power_reference_w: float = Field(default=140.0, gt=0)
    """GPU power treated as 'full' where NVML reports no power limit (GB10 reports none; 140 W is its SoC TDP)."""
    idle_c: float = 35.0
    """Temperature treated as silent (°C)."""
    throttle_c: float = Field(default=95.0, gt=0)
    """Temperature treated as loudest where NVML reports no slowdown threshold (°C)."""
    fan_max_rpm: float = Field(default=5000.0, gt=0)
    """Fan speed treated as 100 % where hwmon has no fanN_max."""
    ignore_sensors: list[str] = ["nvme", "mlx5", "drivetemp"]
    """hwmon chips whose temperatures do not drive the case fans (prefix match)."""

    def to_config(self) -> NoiseConfig:
        return NoiseConfig(**self.model_dump())


class MemorySettings(BaseModel):
    reserve_gib: float = Field(default=8.0, ge=0, le=1024)
    """Safety floor (GiB) kept free of models: `models_available_bytes` = MemAvailable − this. On the
    Spark's shared memory the kernel itself, the desktop, page tables and the CUDA driver's own
    allocations need a few GiB; below that the box freezes instead of OOM-killing."""


class MemoryGuardSettings(BaseModel):
    enabled: bool | None = None
    """Watch for memory exhaustion and act. Default (None): on where GPU memory is unified (the Spark), off elsewhere."""
    action: str = "stop-newest-model"
    """warn, stop-newest-model (the most recently started sparkdeck model, then the next) or stop-largest."""
    psi_full: float = Field(default=20.0, ge=0, le=100)
    """Act when /proc/pressure/memory `full avg10` stays at or above this (%) for hold_s."""
    hold_s: float = Field(default=3.0, ge=0, le=600)
    """How long pressure must stay above psi_full before the guard acts."""
    poll_s: float = Field(default=0.25, ge=0.02, le=5)
    """How often the guard reads MemAvailable on its own (between the 1 s samples)."""
    stop_timeout_s: float = Field(default=2.0, ge=0, le=60)
    """Grace before a stopped container is killed: a freezing box has no time for a 30 s grace."""
    any_container: bool = False
    """stop-largest may pick any container, not only sparkdeck-launched or `sparkdeck.guard=allow` ones."""
    only_label: str | None = None
    """Act only on containers carrying this label (`key` or `key=value`): for an engine shared with other
    tools (and the test suite, whose runs share one engine)."""

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        if v not in ("warn", "stop-newest-model", "stop-largest"):
            raise ValueError("memory_guard.action must be warn, stop-newest-model or stop-largest")
        return v


SEVERITIES = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]
ALERT_EVENTS = ("guard", "container_exit", "model_failed", "gpu_idle", "log_silent", "incident", "summary")
ALERT_OPS = (">", ">=", "<", "<=", "==", "!=")


class AlertRuleSettings(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=64)
    """Unique; a rule named like a built-in replaces it (`enabled = false` switches the built-in off)."""
    metric: str | None = None
    """A dotted path into the snapshot frame, `*` over a list: `gpus.*.temperature_c`, `host.memory.models_available_bytes`."""
    event: str | None = None
    """Or an event: guard, container_exit, model_failed, gpu_idle, log_silent, incident, summary."""
    op: str = ">="
    """How the metric compares with value: >, >=, <, <=, ==, !=."""
    value: float = 0.0
    """The threshold (a metric rule); gpu_idle: the utilization (%) below which the GPU counts as idle."""
    for_s: float = Field(default=0.0, ge=0, le=7 * 86400)
    """The condition must hold this long before the alert fires (gpu_idle, log_silent: the idle or silent time)."""
    severity: str = "warning"
    """info, warning or critical (routing: notify.min_severity and each route's min_severity)."""
    enabled: bool = True
    at: str | None = None
    """summary only: the local time of day it is sent, "HH:MM"."""

    @model_validator(mode="after")
    def _check(self) -> AlertRuleSettings:
        if (self.metric is None) == (self.event is None):
            raise ValueError(f"alert rule {self.name!r} needs exactly one of metric or event")
        if self.event is not None and self.event not in ALERT_EVENTS:
            raise ValueError(f"alert rule {self.name!r}: event must be one of {', '.join(ALERT_EVENTS)}")
        if self.op not in ALERT_OPS:
            raise ValueError(f"alert rule {self.name!r}: op must be one of {' '.join(ALERT_OPS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert rule {self.name!r}: severity must be info, warning or critical")
        if self.event == "summary":
            hh, _, mm = (self.at or "").partition(":")
            if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
                raise ValueError(f'alert rule {self.name!r}: a summary needs at = "HH:MM"')
        return self


class AlertsSettings(BaseModel):
    model_config = {"extra": "forbid"}

    enabled: bool = True
    """Evaluate alert rules on the agent (GET /api/v1/alerts, `alert` frames, notifications)."""
    defaults: bool = True
    """Include the built-in rules (README: Overnight); your [[alerts.rule]] entries replace them by name."""
    rule: list[AlertRuleSettings] = []
    """Your rules, as [[alerts.rule]] tables."""
    keep: int = Field(default=500, ge=10, le=100000)
    """Alerts kept in history (the oldest are dropped)."""


class NotifyRoute(BaseModel):
    model_config = {"extra": "forbid"}

    url: str
    """An Apprise URL; ${VAR} is resolved from the agent's environment, else secrets.env."""
    min_severity: Severity = "info"
    """The least severe alert this URL gets."""


class NotifySettings(BaseModel):
    model_config = {"extra": "forbid"}

    urls: list[str] = []
    """Apprise URLs that get every alert at or above min_severity (env: SPARKDECK_NOTIFY__URLS as a JSON list)."""
    routes: list[NotifyRoute] = []
    """More URLs, each with its own min_severity ([[notify.routes]])."""
    min_severity: Severity = "warning"
    """The least severe alert sent to `urls`."""
    resolved: bool = True
    """Also notify when a firing alert resolves."""
    dedupe_s: float = Field(default=600.0, ge=0, le=86400)
    """The same alert (rule, subject, state) is sent at most once in this window."""
    rate_per_hour: int = Field(default=30, ge=1, le=3600)
    """At most this many notifications an hour per URL; more are dropped and counted (doctor shows it)."""
    retries: int = Field(default=3, ge=0, le=10)
    """Retries of a failed delivery, with backoff doubling from retry_backoff_s."""
    retry_backoff_s: float = Field(default=2.0, ge=0.01, le=600)
    timeout_s: float = Field(default=10.0, ge=0.5, le=120)
    """Connect and read time-out of one delivery."""
    queue: int = Field(default=64, ge=1, le=10000)
    """Notifications waiting for the delivery thread; beyond it the newest is dropped (and counted)."""


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPARKDECK_", env_nested_delimiter="__", extra="forbid")

    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; anything else needs TLS or --insecure."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """TCP port of the API and stream."""
    state_dir: Path = Field(default_factory=default_state_dir)
    """Where tokens (hashed), the audit log and history live."""
    interval_s: float = Field(default=1.0, ge=0.1, le=60.0)
    """Sampling interval in seconds."""
    buffer_s: float = Field(default=300.0, ge=10.0, le=86400.0)
    """Seconds of frames kept in memory for backfill (at most 3,000 frames); older backfill is read from history."""
    simulate: str | None = None
    """Use a fake NVML scenario (gb10, h100, h200x2, no-driver, gpu-lost, unsupported, hang); every frame says simulated."""
    insecure: bool = False
    """Allow a non-loopback bind without TLS. Tokens then cross the network in clear text."""
    allowed_hosts: list[str] = []
    """Extra Host header names accepted (DNS-rebinding defence), e.g. the machine's LAN name."""
    tls: bool = False
    """Serve HTTPS/WSS with the certificate `sparkdeck-agent tls init` made in <state_dir>/tls (or tls_cert/tls_key)."""
    tls_cert: Path | None = None
    """Your own PEM certificate for HTTPS/WSS (implies tls)."""
    tls_key: Path | None = None
    """Your own PEM private key for HTTPS/WSS."""
    client_queue: int = Field(default=8, ge=1, le=256)
    """Snapshots queued per stream client; a client that falls further behind loses the oldest."""
    max_message_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest client->agent WebSocket message; bigger ones close the socket with 1009."""
    auth_fail_limit: int = Field(default=20, ge=0)
    """Failed authentications allowed per client address per minute before 429 (0 = no limit)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest HTTP request body; larger answers 413."""
    history: bool = True
    """Keep history in <state_dir>/history.sqlite3 (survives restarts; /api/v1/history)."""
    history_raw_s: float = Field(default=3600, ge=60)
    """How long every sample is kept on disk."""
    history_10s_s: float = Field(default=86400, ge=600)
    """How long 10-second min/avg/max aggregates are kept."""
    history_60s_s: float = Field(default=30 * 86400, ge=3600)
    """How long 1-minute min/avg/max aggregates are kept."""
    metrics_public: bool = False
    """Serve /metrics (Prometheus) without a token."""
    gpu_timeout_s: float = Field(default=5.0, gt=0)
    """Longest one NVML sample may take before GPU telemetry is reported as stalled."""
    log_level: str = "info"
    """debug, info, warning or error."""
    noise: NoiseSettings = NoiseSettings()
    """Noise proxy tuning and dBA calibration."""
    containers: bool = True
    """Watch the Docker engine (containers in every snapshot, container actions, model launcher)."""
    docker_host: str | None = None
    """Docker Engine API address (unix:///..., tcp://...); default $DOCKER_HOST, else /var/run/docker.sock."""
    control_enabled: bool = True
    """Allow control actions (container start/stop/remove, logs, model launch). Off: they answer 403."""
    models_file: Path | None = None
    """Your model catalog (TOML); default ~/.config/sparkdeck/models.toml. Entries override built-ins by name."""
    secrets_file: Path | None = None
    """KEY=VALUE lines for ${VAR} in model env, used after the agent's environment; default <state_dir>/secrets.env."""
    models_home: Path | None = None
    """Home directory that `~` in a model's volumes means (the owner's Hugging Face cache); default the agent user's home.
    install-service sets it to the invoking user's home."""
    models_bind_allowed: list[str] = ["127.0.0.1"]
    """Addresses a model container may publish its ports on (template or launch `bind`); loopback only by default."""
    max_streams_per_token: int = Field(default=32, ge=1, le=100000)
    """Open WebSocket streams allowed per token; the next handshake answers 429."""
    max_connections: int = Field(default=1024, ge=8, le=1000000)
    """Open connections allowed overall; beyond it new connections are refused."""
    audit_max_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    """audit.log is rotated past this size (audit.log.1 … .3 kept)."""
    memory: MemorySettings = MemorySettings()
    """The memory picture: the safety reserve kept free of models."""
    memory_guard: MemoryGuardSettings = MemoryGuardSettings()
    """What the agent does when shared memory runs out (the Spark freezes instead of OOM-killing)."""
    sysfs_root: Path = Path("/sys")
    """Where sysfs is mounted (hwmon, thermal zones, NIC devices, container cgroups). Tests and `doctor` point it
    at a fake tree; in a container with the host's /sys bound elsewhere, that path."""
    alerts: AlertsSettings = AlertsSettings()
    """Alert rules evaluated on the agent ([[alerts.rule]]; built-in defaults)."""
    notify: NotifySettings = NotifySettings()
    """Where alerts are sent (Apprise URLs)."""

    @model_validator(mode="before")
    @classmethod
    def _control_table(cls, data: Any) -> Any:
        """Accept the ``[control] enabled = false`` table as control_enabled (env: SPARKDECK_CONTROL_ENABLED)."""
        if isinstance(data, dict) and isinstance(data.get("control"), dict):
            data = dict(data)
            table = data.pop("control")
            unknown = set(table) - {"enabled"}
            if unknown:
                raise ValueError(f"unknown [control] option(s): {', '.join(sorted(unknown))}")
            if "enabled" in table:
                data.setdefault("control_enabled", table["enabled"])
        return data

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return v.lower()

    @field_validator("simulate")
    @classmethod
    def _scenario(cls, v: str | None) -> str | None:
        from agent.collectors.nvml_fake import SCENARIOS

        if v and v not in SCENARIOS:
            raise ValueError(f"unknown scenario {v!r}; choose one of {', '.join(SCENARIOS)}")
        return v or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CONFIG_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def tls_enabled(self) -> bool:
        return self.tls or (self.tls_cert is not None and self.tls_key is not None)

    @property
    def tls_files(self) -> tuple[Path, Path]:
        """(certificate, key) to serve with."""
        d = self.state_dir / "tls"
        return (self.tls_cert or d / "cert.pem", self.tls_key or d / "key.pem")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def tokens_file(self) -> Path:
        return self.state_dir / "tokens.json"


_CONFIG_FILE: dict[str, Path | None] = {}


class ConfigError(ValueError):
    pass


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> AgentSettings:
    """Build settings from file < env < overrides (flags); None overrides are ignored."""
    path = Path(config_file) if config_file else (Path(os.environ["SPARKDECK_CONFIG"]) if os.environ.get("SPARKDECK_CONFIG") else default_config_file())
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    _CONFIG_FILE["path"] = path
    try:
        return AgentSettings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _CONFIG_FILE.pop("path", None)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
