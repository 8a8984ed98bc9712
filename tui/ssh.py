"""Reach an agent on a remote loopback through the user's own OpenSSH.

``ssh -N -L 127.0.0.1:<free port>:127.0.0.1:<agent port> [user@]host`` is run as
a child process, so ~/.ssh/config, keys, agents, ProxyJump and known_hosts all
apply exactly as in the user's terminal. BatchMode keeps ssh from prompting
(a TUI cannot answer a password prompt); its errors are turned into specific
messages. The tunnel is torn down when the client exits — also when it is ended by
SIGTERM or SIGHUP (a closed terminal window): ssh runs in its own session, so it
gets neither signal and would otherwise keep the forward open after the client is gone.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_AGENT_PORT = 8611


class SshError(Exception):
    """A specific, user-facing reason the SSH transport failed."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None  # the SSH port
    agent_port: int = DEFAULT_AGENT_PORT

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def base_args(self) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15", "-o", "ConnectTimeout=10"]
        if self.port:
            args += ["-p", str(self.port)]
        return args

    def __str__(self) -> str:
        return f"ssh://{self.destination}{':' + str(self.port) if self.port else ''}"


_HOST_RE = re.compile(r"^[A-Za-z0-9._:\[\]%-]+$")
_USER_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def parse_ssh_url(text: str) -> SshTarget:
    """ssh://[user@]host[:port][?agent_port=N] -> SshTarget; rejects anything ssh could read as an option."""
    parts = urlsplit(text)
    if parts.scheme != "ssh" or not parts.hostname:
        raise SshError(f"{text}: expected ssh://[user@]host[:port]")
    host, user = parts.hostname, parts.username
    if host.startswith("-") or not _HOST_RE.match(host) or (user and (user.startswith("-") or not _USER_RE.match(user))):
        raise SshError(f"{text}: host or user contains characters ssh would misread")
    agent_port = DEFAULT_AGENT_PORT
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        if key == "agent_port" and value.isdigit() and 0 < int(value) < 65536:
            agent_port = int(value)
        else:
            raise SshError(f"{text}: unknown option {item!r} (only agent_port=N)")
    try:
        port = parts.port
    except ValueError:
        raise SshError(f"{text}: bad port") from None
    return SshTarget(host=host, user=user, port=port, agent_port=agent_port)


def ssh_binary() -> str:
    path = os.environ.get("SPARKDECK_SSH") or shutil.which("ssh")
    if not path or not os.access(path, os.X_OK):
        raise SshError("ssh not found: install the OpenSSH client (apt install openssh-client; on macOS it is built in)")
    return path


def explain(stderr: str, target: SshTarget) -> str:
    """Turn ssh's stderr into a specific message."""
    text = stderr.strip()
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return f"{target.host}'s SSH host key is unknown or changed: run `ssh {target.destination}` once in a terminal to check and accept it"
    if "Permission denied" in text:
        return f"SSH authentication to {target.destination} failed: load your key (ssh-add) or set it up with ssh-copy-id {target.destination}"
    if "Could not resolve hostname" in text:
        return f"cannot resolve {target.host}: check the name or your ~/.ssh/config"
    if "Connection refused" in text:
        return f"{target.host} refused the SSH connection (is sshd running, and is the port right?)"
    if "timed out" in text:
        return f"SSH connection to {target.host} timed out"
    if "forwarding failed" in text or "cannot listen" in text:
        return f"ssh could not set up the port forward: {text.splitlines()[-1] if text else 'unknown error'}"
    last = text.splitlines()[-1] if text else "ssh exited without a message"
    return f"ssh to {target.destination} failed: {last}"


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_OPEN: weakref.WeakSet[Tunnel] = weakref.WeakSet()  # every tunnel whose ssh may still run, for close_all()


def close_all() -> None:
    """Close every open tunnel (at exit, and from the SIGTERM/SIGHUP handler)."""
    for tunnel in list(_OPEN):
        tunnel.close()


atexit.register(close_all)  # once per process, at import: every exit path that runs atexit hooks


def _end_on_signal(signum: int, _frame: object) -> None:
    close_all()
    signal.signal(signum, signal.SIG_DFL)  # then die of the signal as before, with its exit status
    os.kill(os.getpid(), signum)


def close_tunnels_on_exit() -> None:
    """Make SIGTERM and SIGHUP close the tunnels before the process dies (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) == signal.SIG_DFL:  # leave a handler someone else installed alone
                signal.signal(signum, _end_on_signal)


class Tunnel:
    """One ``ssh -N -L`` child process forwarding a local port to a remote loopback port."""

    def __init__(self, target: SshTarget, remote_port: int, local_port: int | None = None):
        self.target = target
        self.remote_port = remote_port
        self.local_port = local_port or free_local_port()
        self.proc: subprocess.Popen | None = None

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def command(self) -> list[str]:
        return [
            ssh_binary(),
            "-N",
            *self.target.base_args(),
            "-L",
            f"127.0.0.1:{self.local_port}:127.0.0.1:{self.remote_port}",
            "--",
            self.target.destination,
        ]

    def open(self, timeout: float = 20.0) -> Tunnel:
        """Start ssh and wait until the local end accepts connections (blocking)."""
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        _OPEN.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise SshError(explain(err, self.target))
            try:
                with socket.create_connection(("127.0.0.1", self.local_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.close()
        raise SshError(f"SSH port forward to {self.target.destination} was not up after {timeout:.0f}s")

    def close(self) -> None:
        _OPEN.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> Tunnel:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_agent(tunnel: Tunnel, timeout: float = 10.0) -> None:
    """The forward is up; is an agent listening behind it? Raise a specific SshError if not."""
    try:
        with urllib.request.urlopen(tunnel.local_url + "/api/v1/health", timeout=timeout) as resp:
            if resp.status == 200:
                return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return  # something answers HTTP: it is up
    except (urllib.error.URLError, OSError, ConnectionError):
        pass
    raise SshError(
        f"no sparkdeck agent answers on {tunnel.target.host}'s 127.0.0.1:{tunnel.remote_port}. Start it there: "
        "`sparkdeck-agent serve` (or `sudo systemctl start sparkdeck-agent`)"
    )


async def open_agent_tunnel(target: SshTarget) -> Tunnel:
    """Open and check a tunnel to the agent without blocking the event loop."""
    tunnel = Tunnel(target, target.agent_port)
    await asyncio.to_thread(tunnel.open)
    try:
        await asyncio.to_thread(check_agent, tunnel)
    except SshError:
        tunnel.close()
        raise
    return tunnel


def fetch_token(target: SshTarget, name: str, agent_command: str = "sparkdeck-agent", timeout: float = 60.0) -> str:
    """Create a token on the remote agent over the same SSH connection (call only with the user's consent)."""
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise SshError(f"bad token name {name!r}")
    cmd = [ssh_binary(), *target.base_args(), "--", target.destination, agent_command, "token", "add", name, "--scope", "control"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SshError(f"fetching a token from {target.destination} timed out") from None
    if out.returncode == 255:
        raise SshError(explain(out.stderr, target))
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise SshError(f"`{agent_command} token add` failed on {target.host}: {reason}")
    token = (out.stdout.strip().splitlines() or [""])[-1].strip()
    if not token.startswith("sdk_"):
        raise SshError(f"`{agent_command} token add` on {target.host} printed no token")
    return token
