"""Turn a Target into something the client can open: an SSH tunnel, a pinned TLS context, or as is.

No Textual here: the dashboard, ``status`` and ``forward`` all call ``prepare`` first.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tui.client import Target, TargetError, rest_call
from tui.pinning import PinError, trust
from tui.ssh import SshError, Tunnel, check_agent, parse_ssh_url


@dataclass
class Prepared:
    target: Target
    notes: list[str] = field(default_factory=list)  # things to tell the user once (a new pin)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()


def prepare(target: Target, *, fingerprint: str | None = None) -> Prepared:
    """Open what the target needs before connecting; raise TargetError with a specific reason."""
    url = target.url
    if url.startswith("ssh://"):
        try:
            ssh = parse_ssh_url(url)
            tunnel = Tunnel(ssh, ssh.agent_port).open()
        except SshError as exc:
            raise TargetError(str(exc)) from None
        try:
            check_agent(tunnel)
        except SshError as exc:
            tunnel.close()
            raise TargetError(str(exc)) from None
        return Prepared(replace(target, url=tunnel.local_url, via=url), [f"{target.name}: via SSH, agent forwarded to {tunnel.local_url}"], [tunnel.close])
    if url.startswith("https://"):
        parts = urllib.parse.urlsplit(url)
        try:
            t = trust(parts.hostname or "", parts.port or 443, expected=fingerprint)
        except PinError as exc:
            raise TargetError(str(exc)) from None
        notes = (
            [f"{parts.hostname}:{parts.port or 443}: pinned certificate {t.fingerprint} (compare with `sparkdeck-agent tls fingerprint` on the machine)"]
            if t.newly_pinned
            else []
        )
        return Prepared(replace(target, ssl=t.context), notes)
    if fingerprint:
        raise TargetError("--fingerprint applies to https:// targets only")
    return Prepared(target)


def model_port(target: Target, name: str) -> int:
    """The host port a model publishes, from the agent's catalog (running instance first)."""
    body = rest_call(target.url, target.token, "GET", "/api/v1/models", context=target.ssl)
    for model in body.get("models", []):
        if model.get("name") != name:
            continue
        url = (model.get("state") or {}).get("url")
        if url:
            port = urllib.parse.urlsplit(url).port
            if port:
                return port
        ports = list((model.get("ports") or {}).values())
        if ports:
            return int(ports[0])
        raise TargetError(f"model {name!r} publishes no port")
    raise TargetError(f"no model named {name!r} on this agent")


def forward(original: Target, prepared: Target, what: str, *, local_port: int | None = None, out=sys.stdout) -> Tunnel | None:
    """Forward a model's (or a plain) port to this machine; None when it is reachable as is.

    ``original`` is the target as given (its URL says whether SSH is involved); ``prepared``
    is the one ``prepare`` returned, used to ask the agent for the model's port."""
    port = int(what) if what.isdigit() else model_port(prepared, what)
    if not 0 < port < 65536:
        raise TargetError(f"bad port {port}")
    ssh_url = original.url
    if not ssh_url.startswith("ssh://"):
        host = urllib.parse.urlsplit(original.url).hostname
        print(f"http://{host}:{port}  (reachable directly; no forward needed)", file=out, flush=True)
        return None
    try:
        tunnel = Tunnel(parse_ssh_url(ssh_url), port, local_port).open()
    except SshError as exc:
        raise TargetError(str(exc)) from None
    print(f"{tunnel.local_url}  ->  {what} on {parse_ssh_url(ssh_url).host} (port {port}); Ctrl-C stops", file=out, flush=True)
    return tunnel
