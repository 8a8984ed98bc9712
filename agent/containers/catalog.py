"""The model catalog: TOML templates, built-ins shipped with the package plus the user's file.

Templates become a Docker create request by ``render``: ``{param}`` placeholders
are filled into single argv items of an exec-form command (nothing ever passes
through a shell), and ``${VAR}`` in env values is resolved on the agent from its
environment or its secrets file. Resolved values go only into the create
request; ``public`` (what clients see) shows the ``${VAR}`` reference instead.
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.containers.serving import LABEL as METRICS_LABEL  # the template's metrics field, for the serving poller
from agent.containers.serving import label_value as metrics_label

MODEL_LABEL = "sparkdeck.model"
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# Docker's reference grammar, simplified: [registry[:port]/]path[:tag][@digest]
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?\}")  # ${VAR} required, ${VAR:-} optional
_PORT_KEY = re.compile(r"^[0-9]{1,5}/(tcp|udp)$")
_SECRETISH = re.compile(r"TOKEN|KEY|SECRET|PASS|AUTH|CREDENTIAL", re.IGNORECASE)
_SIZE = re.compile(r"^([0-9]+)([bkmg]?)$", re.IGNORECASE)
MAX_PARAM_CHARS = 512

Scalar = str | int | float | bool


LOOPBACK = "127.0.0.1"  # where model ports are published unless the config allows more


class CatalogError(ValueError):
    pass


class RenderError(ValueError):
    """A launch request or template that cannot become a container; ``code`` goes in the 4xx body."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _placeholders(text: str) -> list[str]:
    names = []
    for _, name, spec, conv in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"placeholder {{{name}}} in {text!r}: only plain {{name}} is allowed")
        names.append(name)
    return names


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"size {text!r}: use a number with b, k, m or g (e.g. 16g)")
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def url_path(v: str, what: str) -> str:
    if not v.startswith("/") or any(c in v for c in " \r\n"):
        raise ValueError(f"{what} path must start with / and hold no spaces")
    return v


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: str
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return url_path(v, "health")


class Metrics(BaseModel):
    """Where the model server publishes its metrics (agent/containers/serving.py reads them every 5 s)."""

    model_config = ConfigDict(extra="forbid")
    port: str
    path: str = "/metrics"
    kind: Literal["vllm", "sglang", "llama.cpp", "trtllm", "ollama"]

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return url_path(v, "metrics")


AUTO = "auto"  # a fraction param left at auto is sized by the launch fit check


class MemoryClaim(BaseModel):
    """What a model takes from memory: a fixed size, or the share of total memory a param gives
    (vLLM --gpu-memory-utilization, SGLang --mem-fraction-static). The launch fit check uses it."""

    model_config = ConfigDict(extra="forbid")
    gib: float | None = Field(default=None, gt=0, le=65536)
    fraction_param: str | None = None
    max_fraction: float | None = Field(default=None, gt=0, le=1)
    """Largest share an `auto` fraction is given (default 0.85)."""

    @model_validator(mode="after")
    def _one_kind(self) -> MemoryClaim:
        if (self.gib is None) == (self.fraction_param is None):
            raise ValueError("give either gib or fraction_param, not both (nor neither)")
        if self.max_fraction is not None and self.fraction_param is None:
            raise ValueError("max_fraction goes with fraction_param")
        return self


def fraction_value(name: str, value: Any) -> float | None:
    """A fraction param's value as a float in (0, 1], None for auto; ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'param {name!r} must be a fraction in (0, 1] or "auto", not {value!r}') from None
    if not 0 < f <= 1:
        raise ValueError(f"param {name!r} = {value!r} is outside (0, 1]")
    return f


class ModelTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    description: str = ""
    image: str
    command: list[str] = []
    entrypoint: list[str] | None = None
    params: dict[str, Scalar] = {}
    gpus: Literal["all"] | int | None = None
    ipc: str | None = None
    shm_size: str | None = None
    ulimits: dict[str, int] = {}
    ports: dict[str, int] = {}
    volumes: list[str] = []
    env: dict[str, str] = {}
    health: Health | None = None
    endpoint: str | None = None
    """Path clients talk to on the health port (or the first port), e.g. "/v1" for OpenAI-compatible servers, "" for the root."""
    metrics: Metrics | None = None
    startup_timeout_s: float = Field(default=900.0, gt=0, le=86400)
    memory: MemoryClaim | None = None
    bind: str | None = None
    """Host address the ports are published on; default 127.0.0.1. Another one must be in the agent's models_bind_allowed."""

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not _IMAGE.match(v):
            raise ValueError(f"{v!r} is not a valid image reference")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return v if not v else url_path(v, "endpoint")  # "": the server's root (Ollama)

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.ip_address(v)  # a ValueError names the bad address
        return v

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, v: str | None) -> str | None:
        if v is not None:
            parse_size(v)
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: dict[str, int]) -> dict[str, int]:
        for key, host in v.items():
            if not _PORT_KEY.match(key) or not 1 <= host <= 65535:
                raise ValueError(f'port {key!r} = {host}: use "8000/tcp" = 1..65535')
        return v

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: list[str]) -> list[str]:
        for spec in v:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or not parts[1].startswith("/"):
                raise ValueError(f"volume {spec!r}: use SOURCE:/container/path[:ro]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelTemplate:
        for item in self.command + (self.entrypoint or []):
            for name in _placeholders(item):
                if name not in self.params:
                    raise ValueError(f"command uses {{{name}}} but params has no default for it")
        for key in self.env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"env name {key!r} is not valid")
        if self.health is not None and self.health.port not in self.ports:
            raise ValueError(f"health.port {self.health.port!r} is not one of ports")
        if self.metrics is not None and self.metrics.port not in self.ports:
            raise ValueError(f"metrics.port {self.metrics.port!r} is not one of ports")
        if self.memory is not None and self.memory.fraction_param is not None:
            fp = self.memory.fraction_param
            if fp not in self.params:
                raise ValueError(f"memory.fraction_param {fp!r} is not one of params ({', '.join(sorted(self.params)) or 'none'})")
            fraction_value(fp, self.params[fp])
        return self

    def secret_names(self) -> list[str]:
        return sorted({n for v in self.env.values() for n, _ in _SECRET_REF.findall(v)})

    def public(self, secrets: Secrets) -> dict[str, Any]:
        """What clients may see: no resolved secret, no literal value under a secret-looking name."""
        data = self.model_dump(exclude_none=True)
        data["env"] = {k: (v if _SECRET_REF.search(v) or not _SECRETISH.search(k) else "***") for k, v in self.env.items()}
        data["secrets"] = {n: secrets.has(n) for n in self.secret_names()}
        return data


class Secrets:
    """``${VAR}`` values: the agent's environment first, then KEY=VALUE lines in the secrets file."""

    def __init__(self, path: Path | None, environ: dict[str, str] | None = None):
        self.path = path
        self.environ = os.environ if environ is None else environ

    def _file(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.path is None:
            return out
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return out
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out[key.strip()] = value
        return out

    def get(self, name: str) -> str | None:
        if self.environ.get(name):
            return self.environ[name]
        return self._file().get(name) or None

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def values(self) -> list[str]:
        """Every value in the secrets file (to mask them in log lines that leave the agent)."""
        return [v for v in self._file().values() if v]


@dataclass
class LaunchSpec:
    """A rendered template: the engine's create body, plus what readiness and redaction need."""

    name: str
    image: str
    body: dict[str, Any]
    host_ports: list[int]
    health_url: tuple[int, str] | None
    startup_timeout_s: float
    secret_values: list[str] = field(default_factory=list)
    bind: str = LOOPBACK

    @property
    def probe_host(self) -> str:
        """Where the agent itself reaches the published ports: loopback for a wildcard bind."""
        return LOOPBACK if self.bind in ("0.0.0.0", "::") else self.bind

    @property
    def listen(self) -> list[str]:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return [f"{host}:{p}" for p in self.host_ports]

    def redact(self, text: str) -> str:
        for value in self.secret_values:
            if value:
                text = text.replace(value, "***")
        return text


def _check_param(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RenderError("bad_param", f"param {name!r} must be a string or a number")
    text = str(value)
    if len(text) > MAX_PARAM_CHARS or any(ord(c) < 32 for c in text):
        raise RenderError("bad_param", f"param {name!r} is too long or holds control characters")
    if text.startswith("-"):  # a value must not turn into an option of the server it is passed to
        raise RenderError("bad_param", f"param {name!r} must not start with '-'")
    return text


def resolve_bind(t: ModelTemplate, bind: str | None, allowed: list[str]) -> str:
    """The address a launch publishes on: the request's, else the template's, else loopback.
    Anything but loopback must be listed in the agent's ``models_bind_allowed``: a model server
    answers without auth, and Docker's published ports bypass the host firewall."""
    address = bind if bind is not None else (t.bind or LOOPBACK)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise RenderError("bad_param", f"bind {address[:64]!r} is not an IP address") from None
    if address != LOOPBACK and address not in allowed:
        raise RenderError(
            "bind_not_allowed",
            f"publishing on {address} is not allowed by this agent (models_bind_allowed = {allowed}); add it to the agent's config, or reach the model with `sparkdeck forward`",
        )
    return address


def render(
    t: ModelTemplate,
    secrets: Secrets,
    *,
    params: dict[str, Any] | None = None,
    port: int | None = None,
    bind: str | None = None,
    allowed_binds: list[str] | None = None,
    home: Path | None = None,
) -> LaunchSpec:
    address = resolve_bind(t, bind, allowed_binds if allowed_binds is not None else [LOOPBACK])
    values = {k: str(v) for k, v in t.params.items()}
    for key, value in (params or {}).items():
        if key not in t.params:
            raise RenderError("bad_param", f"unknown param {key!r}; this template takes: {', '.join(sorted(t.params)) or 'none'}")
        values[key] = _check_param(key, value)
    try:
        command = [item.format_map(values) for item in t.command]
        entrypoint = [item.format_map(values) for item in t.entrypoint] if t.entrypoint is not None else None
    except (KeyError, ValueError, IndexError) as exc:
        raise RenderError("bad_template", f"template {t.name!r} cannot be filled in: {exc}") from None
    ports = dict(t.ports)
    if port is not None:
        if not 1 <= port <= 65535:
            raise RenderError("bad_param", "port must be 1..65535")
        if not ports:
            raise RenderError("bad_param", f"template {t.name!r} publishes no port to override")
        key = t.health.port if t.health else next(iter(ports))
        ports[key] = port
    env, secret_values = [], []
    for key, value in t.env.items():
        missing: list[str] = []
        optional_unset: list[str] = []

        # bound as defaults: re.sub calls this within the iteration, but the binding makes that plain
        def sub(m: re.Match, missing: list[str] = missing, optional_unset: list[str] = optional_unset) -> str:
            got = secrets.get(m.group(1))
            if got is None:
                (optional_unset if m.group(2) else missing).append(m.group(1))
                return ""
            secret_values.append(got)
            return got

        resolved = _SECRET_REF.sub(sub, value)
        if missing:
            where = f" or in {secrets.path}" if secrets.path else ""
            raise RenderError("missing_secret", f"model {t.name!r} needs {missing[0]}: set it in the agent's environment{where}")
        if optional_unset and not resolved:
            continue  # an optional secret that is not set: leave the variable out altogether
        env.append(f"{key}={resolved}")
    host_config: dict[str, Any] = {
        "PortBindings": {k: [{"HostIp": address, "HostPort": str(v)}] for k, v in ports.items()},
        "Binds": [expand_home(v, home) for v in t.volumes],
        "Ulimits": [{"Name": k, "Soft": v, "Hard": v} for k, v in t.ulimits.items()],
    }
    if t.ipc:
        host_config["IpcMode"] = t.ipc
    if t.shm_size:
        host_config["ShmSize"] = parse_size(t.shm_size)
    if t.gpus is not None:
        host_config["DeviceRequests"] = [{"Driver": "", "Count": -1 if t.gpus == "all" else int(t.gpus), "Capabilities": [["gpu"]]}]
    body: dict[str, Any] = {
        "Image": t.image,
        "Env": env,
        "Labels": {MODEL_LABEL: t.name, **({METRICS_LABEL: metrics_label(t.metrics.kind, t.metrics.port, t.metrics.path)} if t.metrics else {})},
        "ExposedPorts": {k: {} for k in ports},
        "HostConfig": host_config,
    }
    if command:
        body["Cmd"] = command
    if entrypoint is not None:
        body["Entrypoint"] = entrypoint
    health = (ports[t.health.port], t.health.path) if t.health else None
    return LaunchSpec(t.name, t.image, body, sorted(set(ports.values())), health, t.startup_timeout_s, secret_values, address)


def expand_home(volume: str, home: Path | None) -> str:
    """`~/x:/y` with ~ as ``home`` (models_home: the owner's cache, not the service user's), else the agent's own home."""
    if not volume.startswith("~/") and not volume.startswith("~:") and volume != "~":
        return os.path.expanduser(volume) if volume.startswith("~") else volume
    return (str(home) if home is not None else os.path.expanduser("~")) + volume[1:]


def _parse(text: str, origin: str) -> tuple[dict[str, ModelTemplate], list[str], dict[str, str]]:
    """(templates, errors, {name of a broken entry: its error})."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{origin}: not valid TOML: {exc}"], {}
    models: dict[str, ModelTemplate] = {}
    errors: list[str] = []
    broken: dict[str, str] = {}
    entries = data.get("model", [])
    if not isinstance(entries, list):
        return {}, [f"{origin}: use [[model]] tables"], {}
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        try:
            t = ModelTemplate.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "model"
            errors.append(f"{origin}: model {label!r}: {where}: {first.get('msg')}")
            if isinstance(label, str):
                broken[label] = errors[-1]
            continue
        if t.name in models:
            errors.append(f"{origin}: model {t.name!r} is defined twice; the later one wins")
        models[t.name] = t
    return models, errors, broken


def default_models_file() -> Path | None:
    for base in (os.environ.get("CONFIGURATION_DIRECTORY"), os.environ.get("XDG_CONFIG_HOME"), os.path.expanduser("~/.config")):
        if base:
            path = Path(base.split(":")[0]) / ("models.toml" if "CONFIGURATION_DIRECTORY" in os.environ else "sparkdeck/models.toml")
            if path.is_file():
                return path
    return None


class Catalog:
    def __init__(self, user_file: Path | None = None):
        self.user_file = user_file
        self.models: dict[str, ModelTemplate] = {}
        self.errors: list[str] = []
        self.broken: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        builtin = resources.files("agent").joinpath("models.toml").read_text(encoding="utf-8")
        self.models, self.errors, self.broken = _parse(builtin, "built-in catalog")
        if self.user_file is not None:
            try:
                text = self.user_file.read_text(encoding="utf-8")
            except OSError as exc:
                self.errors.append(f"{self.user_file}: cannot read: {exc.strerror}")
                return
            user, errors, broken = _parse(text, str(self.user_file))
            self.models.update(user)  # user entries override built-ins by name
            for name in broken:  # a broken override must not silently fall back to the built-in
                self.models.pop(name, None)
            self.broken.update(broken)
            self.errors += errors

    def get(self, name: str) -> ModelTemplate | None:
        return self.models.get(name)
