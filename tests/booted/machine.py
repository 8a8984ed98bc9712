"""A booted Debian 12 systemd in systemd-nspawn, for testing the real service.

The rootfs (mmdebstrap, ~1.5 min) and a wheelhouse of the project's dependencies for
the container's Python 3.11 are cached outside the repo in CACHE and reused; the
project's own wheel is built fresh each run. The container gets its own network
namespace (--network-veth) with one veth pair: HOST_IP on the host side, GUEST_IP in
the container; everything else in it talks over its own loopback. Commands run in it
with `nsenter -a` (its mounts, users, network); clients run with `nsenter -n` only
(this venv's Python in its network). `close()` powers it off and removes the tree,
also after a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SPARKDECK_TEST_CACHE", "/var/cache/sparkdeck-test"))
PROBE = Path(__file__).with_name("probe.py")
HOST_IP, GUEST_IP = "10.213.7.1", "10.213.7.2"
# the package set, plus sudo: the README's commands are run exactly as an admin types them;
# openssh-server: `sparkdeck setup` reaches the machine as a laptop would (tests/booted/test_booted_setup.py)
INCLUDE = "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,sudo,openssh-server"
ROOTFS_TAR = CACHE / f"bookworm-rootfs-{hashlib.sha256(INCLUDE.encode()).hexdigest()[:8]}.tar"


class BootError(RuntimeError):
    pass


def _run(cmd: list[str], timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise BootError(f"{shlex.join(cmd)} -> {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def ensure_rootfs() -> Path:
    if ROOTFS_TAR.is_file():
        return ROOTFS_TAR
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / "bookworm-rootfs.partial.tar"  # mmdebstrap picks the format from the name: keep .tar
    _run(["mmdebstrap", "--variant=apt", f"--include={INCLUDE}", "bookworm", str(tmp)], timeout=600)
    os.replace(tmp, ROOTFS_TAR)
    return ROOTFS_TAR


def ensure_wheels(dest: Path) -> None:
    """Dependencies from the cache (keyed by pyproject.toml's dependency list), the project's wheel built now.

    Built with this Python for the container's (Debian 12: CPython 3.11, same arch).
    """
    import tomllib

    if sys.version_info[:2] != (3, 11):
        raise BootError(
            f"the wheelhouse is built with this Python for the container's 3.11; run make test-service from a 3.11 venv (this is {sys.version.split()[0]})"
        )

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    key = hashlib.sha256(json.dumps(project.get("dependencies", [])).encode()).hexdigest()[:16]
    deps = CACHE / f"wheelhouse-cp311-{os.uname().machine}-{key}"
    pip = [sys.executable, "-m", "pip", "-q", "wheel", "--disable-pip-version-check"]
    if not deps.is_dir():
        partial = Path(str(deps) + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run([*pip, "-w", str(partial), *project.get("dependencies", [])], timeout=600)
        os.replace(partial, deps)
    dest.mkdir(parents=True, exist_ok=True)
    for w in deps.glob("*.whl"):
        shutil.copy2(w, dest)
    with tempfile.TemporaryDirectory() as build:  # setuptools writes build/ next to the source: build a copy
        src = Path(build) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".state", ".pytest_cache", "__pycache__"))
        _run([*pip, "--no-deps", str(src), "-w", str(dest)], timeout=300, cwd=build)


class Machine:
    started = 0

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="sparkdeck-booted-", dir="/var/tmp"))
        Machine.started += 1  # unique per machine: two modules in one run must not share the veth's name
        self.name = f"sdk{os.getpid() % 100000}{Machine.started}"
        self.veth = f"ve-{self.name}"
        self.nspawn: subprocess.Popen | None = None
        self.leader: int | None = None
        self.log = self.dir / "nspawn.log"
        # what a test module's fixture shares with its tests: tokens made on the machine, the laptop side
        self.state: dict[str, Any] = {}
        self.laptop: Any = None

    # -- lifecycle ------------------------------------------------------------------
    def boot(self) -> None:
        tar = ensure_rootfs()
        self.tree = self.dir / "root"
        self.tree.mkdir()
        _run(["tar", "-xf", str(tar), "-C", str(self.tree)], timeout=180)
        ensure_wheels(self.tree / "root/wheels")
        shutil.copy2(PROBE, self.tree / "root/probe.py")
        cmd = [
            "systemd-nspawn", "-D", str(self.tree), "-b", "--register=no", "--keep-unit", "--console=passive",
            f"--machine={self.name}", "--network-veth", "--bind=/var/run/docker.sock", *self.extra_args,
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.leader is None:
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"systemd-nspawn did not start a container: {self.log.read_text()[-2000:]}")
            self.leader = self._child_of(self.nspawn.pid)
            time.sleep(0.2)
        while True:
            r = self.sh("systemctl is-system-running", check=False)
            if r.stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise BootError(f"the container's systemd did not finish booting: {r.stdout.strip()}")
            time.sleep(0.5)
        # the one veth pair: the host is the "LAN", the container the machine sparkdeck runs on
        _run(["ip", "addr", "add", f"{HOST_IP}/30", "dev", self.veth])
        _run(["ip", "link", "set", self.veth, "up"])
        self.net(f"ip addr add {GUEST_IP}/30 dev host0 && ip link set host0 up && ip link set lo up")

    @staticmethod
    def _child_of(pid: int) -> int | None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                return int(entry)
        return None

    def close(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            try:
                if self.leader is not None:
                    self.sh("systemctl poweroff --no-block", check=False, timeout=10)
                self.nspawn.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)  # the group we started, nothing else
                self.nspawn.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def close_with_journal(self, lines: int = 60) -> None:
        """close(), printing the agent's journal first (pytest shows it when a test failed)."""
        try:
            if self.leader:
                print(self.journal(lines))
        finally:
            self.close()

    # -- inside ---------------------------------------------------------------------
    def sh(self, script: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A shell command inside the container (all its namespaces), with a clean PATH."""
        prefix = "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; "
        prefix += "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        return _run(["nsenter", "-t", str(self.leader), "-a", "sh", "-c", prefix + script], timeout=timeout, check=check, env={"LANG": "C.UTF-8"})

    def net(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A host command in the container's network namespace only."""
        return _run(["nsenter", "-t", str(self.leader), "-n", "sh", "-c", script], timeout=timeout, check=check)

    def probe(self, *args: str, timeout: float = 60) -> dict:
        """probe.py with this venv's Python, inside the container's network (its loopback)."""
        r = _run(["nsenter", "-t", str(self.leader), "-n", sys.executable, str(PROBE), *args], timeout=timeout)
        return json.loads(r.stdout)

    def show(self, *props: str, unit: str = "sparkdeck-agent.service") -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def path(self, p: str) -> Path:
        return self.tree / p.lstrip("/")

    # -- sshd, for `sparkdeck setup` ------------------------------------------------------
    def start_sshd(self, port: int) -> None:
        """The rootfs's sshd on GUEST_IP:port, the address a laptop on the LAN (this host) reaches."""
        self.path("/etc/ssh/sshd_config.d/sparkdeck-test.conf").write_text(f"Port {port}\nListenAddress {GUEST_IP}\nPasswordAuthentication yes\n")
        self.sh("systemctl restart ssh.service && systemctl is-active ssh.service")

    def add_user(self, name: str, *, sudo: bool, public_key: str | None = None, password: str | None = None, groups: str = "") -> None:
        """A login user; `sudo`: passwordless sudo rights (as the Spark's first user has, with a password)."""
        script = f"useradd -m -s /bin/bash {'-G ' + groups if groups else ''} {name}"
        if sudo:
            script += f" && echo '{name} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{name} && chmod 440 /etc/sudoers.d/{name}"
        if password:
            script += f" && echo {shlex.quote(name + ':' + password)} | chpasswd"
        if public_key:
            script += (
                f" && install -d -m 700 -o {name} -g {name} /home/{name}/.ssh && printf '%s\\n' {shlex.quote(public_key)} > /home/{name}/.ssh/authorized_keys"
            )
            script += f" && chown {name}: /home/{name}/.ssh/authorized_keys && chmod 600 /home/{name}/.ssh/authorized_keys"
        self.sh(script)

    def journal(self, lines: int = 60) -> str:
        return self.sh(f"journalctl -u sparkdeck-agent --no-pager -n {lines}", check=False).stdout
