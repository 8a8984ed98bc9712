"""The client's files: ``hosts.toml`` (named agents) and ``client.toml`` (alert thresholds, the chosen theme).

Both live in ``$XDG_CONFIG_HOME/sparkdeck`` (default ``~/.config/sparkdeck``).
hosts.toml may hold tokens, so it is written 0600 (its directory 0700)::

    [hosts.spark]
    url = "http://spark.local:8611"
    token_file = "~/.config/sparkdeck/spark.token"   # or: token = "..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tui.alerts import AlertRules
from tui.client import Target, TargetError, parse_url
from tui.paths import config_dir


def hosts_path() -> Path:
    return config_dir() / "hosts.toml"


@dataclass
class HostEntry:
    name: str
    url: str
    token: str | None = None
    token_file: str | None = None

    def resolve_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            path = Path(self.token_file).expanduser()
            try:
                return path.read_text().strip() or None
            except OSError as exc:
                raise TargetError(f"host {self.name!r}: cannot read token_file {path}: {exc.strerror}") from None
        return None


def load_hosts(path: Path | None = None) -> dict[str, HostEntry]:
    path = path or hosts_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: {exc}") from None
    out: dict[str, HostEntry] = {}
    for name, entry in (data.get("hosts") or {}).items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise TargetError(f"{path}: host {name!r} needs a url")
        out[name] = HostEntry(name, str(entry["url"]), entry.get("token"), entry.get("token_file"))
    return out


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _toml_key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else _toml_str(name)


def save_hosts(hosts: dict[str, HostEntry], path: Path | None = None) -> Path:
    path = path or hosts_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["# sparkdeck hosts (sparkdeck hosts add/list/remove); may hold tokens: keep it 0600", ""]
    for entry in hosts.values():
        lines.append(f"[hosts.{_toml_key(entry.name)}]")
        lines.append(f"url = {_toml_str(entry.url)}")
        if entry.token:
            lines.append(f"token = {_toml_str(entry.token)}")
        if entry.token_file:
            lines.append(f"token_file = {_toml_str(entry.token_file)}")
        lines.append("")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve_target(text: str, token: str | None = None, hosts: dict[str, HostEntry] | None = None) -> Target:
    """A TARGET argument -> Target. Token precedence: --token, SPARKDECK_TOKEN, hosts file."""
    env_token = os.environ.get("SPARKDECK_TOKEN") or None
    if "://" in text:
        return Target(name=text.split("://", 1)[1].rstrip("/"), url=parse_url(text), token=token or env_token)
    hosts = load_hosts() if hosts is None else hosts
    entry = hosts.get(text)
    if entry is None:
        known = ", ".join(sorted(hosts)) or "none yet (sparkdeck hosts add NAME URL)"
        raise TargetError(f"{text!r} is not a URL or a known host; hosts: {known}")
    return Target(name=entry.name, url=parse_url(entry.url), token=token or env_token or entry.resolve_token())


def load_alert_rules(path: Path | None = None) -> AlertRules:
    """``[alerts]`` of client.toml: gpu_temp_c, memory_percent, model_exited (bool)."""
    path = path or config_dir() / "client.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return AlertRules()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: {exc}") from None
    return AlertRules.from_dict(data.get("alerts") or {})


def client_path() -> Path:
    return config_dir() / "client.toml"


def load_theme(path: Path | None = None) -> str | None:
    """``[ui] theme`` of client.toml: the theme chosen last time (None: Textual's default)."""
    try:
        data = tomllib.loads((path or client_path()).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None  # a broken file is reported by load_alert_rules; the theme just falls back
    theme = (data.get("ui") or {}).get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(theme: str, path: Path | None = None) -> Path:
    """Set ``[ui] theme`` in client.toml, keeping the user's other lines and comments as they are."""
    path = path or client_path()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    setting = f"theme = {_toml_str(theme)}"
    start = next((i for i, line in enumerate(lines) if line.strip() == "[ui]"), None)
    if start is None:
        lines += ([""] if lines and lines[-1].strip() else []) + ["[ui]", setting]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        at = next((i for i in range(start + 1, end) if lines[i].split("=", 1)[0].strip() == "theme"), None)
        if at is None:
            lines.insert(start + 1, setting)
        else:
            lines[at] = setting
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
