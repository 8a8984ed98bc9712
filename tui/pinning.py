"""Trust on first use for agent certificates, like SSH's known_hosts.

``~/.config/sparkdeck/known_agents`` holds one line per agent:
``host:port SHA256:<fingerprint> <base64 DER certificate>``. The pinned
certificate itself becomes the only trust anchor of the TLS context, so a changed
certificate fails the handshake, before the token is ever sent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from tui.paths import config_dir


class PinError(Exception):
    """The agent's certificate cannot be trusted; the message says why and what to do."""


def fingerprint(der: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def known_agents_path() -> Path:
    return config_dir() / "known_agents"


def fetch_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """The DER certificate the server presents (no verification: we only look)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise PinError(f"cannot fetch the TLS certificate of {host}:{port}: {exc}") from None
    if not der:
        raise PinError(f"{host}:{port} presented no certificate")
    return der


@dataclass
class Pin:
    key: str
    fingerprint: str
    der: bytes


class KnownAgents:
    def __init__(self, path: Path | None = None):
        self.path = path or known_agents_path()

    def _read(self) -> dict[str, Pin]:
        pins: dict[str, Pin] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return pins
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or line.startswith("#"):
                continue
            try:
                pins[parts[0]] = Pin(parts[0], parts[1], base64.b64decode(parts[2]))
            except ValueError:
                continue
        return pins

    def get(self, key: str) -> Pin | None:
        return self._read().get(key)

    def add(self, key: str, der: bytes) -> Pin:
        pins = self._read()
        pins[key] = Pin(key, fingerprint(der), der)
        self._write(pins)
        return pins[key]

    def remove(self, key: str) -> bool:
        pins = self._read()
        if pins.pop(key, None) is None:
            return False
        self._write(pins)
        return True

    def _write(self, pins: dict[str, Pin]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lines = ["# sparkdeck pinned agent certificates: host:port fingerprint certificate"]
        lines += [f"{p.key} {p.fingerprint} {base64.b64encode(p.der).decode()}" for p in pins.values()]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)


@dataclass
class Trust:
    context: ssl.SSLContext
    fingerprint: str
    newly_pinned: bool


def _context_for(der: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    ctx.check_hostname = False  # the pin, not the name, is what we trust
    return ctx


def trust(host: str, port: int, *, expected: str | None = None, store: KnownAgents | None = None) -> Trust:
    """An SSL context that accepts only the pinned certificate of host:port.

    First contact pins what the server shows (or checks it against ``expected``,
    from ``--fingerprint``); later contacts refuse a different certificate.
    """
    store = store or KnownAgents()
    key = f"{host}:{port}"
    pin = store.get(key)
    if pin is not None:
        if expected and expected != pin.fingerprint:
            raise PinError(
                f"--fingerprint {expected} differs from the pinned {pin.fingerprint} for {key}; run `sparkdeck hosts unpin {key}` first if the agent's certificate was re-issued"
            )
        return Trust(_context_for(pin.der), pin.fingerprint, False)
    der = fetch_certificate(host, port)
    fp = fingerprint(der)
    if expected and expected != fp:
        raise PinError(f"{key} presented certificate {fp}, not the expected {expected}: refusing to connect")
    store.add(key, der)
    return Trust(_context_for(der), fp, True)


def changed_message(key: str, pinned: str, seen: str | None) -> str:
    return (
        f"The TLS certificate of {key} has CHANGED (pinned {pinned}, now {seen or 'a different one'}).\n"
        "Someone may be intercepting the connection, or the agent's certificate was re-issued.\n"
        f"Compare with `sparkdeck-agent tls fingerprint` on the machine; if it matches, re-pin with\n"
        f"`sparkdeck hosts unpin {key}` and connect again."
    )


def check_unchanged(host: str, port: int, store: KnownAgents | None = None) -> None:
    """Raise PinError with the full explanation when the server's certificate differs from the pin."""
    store = store or KnownAgents()
    key = f"{host}:{port}"
    pin = store.get(key)
    if pin is None:
        return
    seen = fingerprint(fetch_certificate(host, port))
    if seen != pin.fingerprint:
        raise PinError(changed_message(key, pin.fingerprint, seen))
