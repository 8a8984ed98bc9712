"""`sparkdeck setup HOST` for real: this host is the laptop, a booted Debian 12 systemd is the machine.

The machine (tests/booted/machine.py) runs its own sshd on its LAN address (GUEST_IP, a free port); the
laptop is this venv's `sparkdeck` in a throw-away HOME with a throw-away key, using this host's OpenSSH
through SPARKDECK_SSH (a wrapper adding -F: ssh reads the real user's ~/.ssh, not $HOME's). The remote pip
gets the cached wheelhouse with --pip-args, so the run works offline. The tests run in file order: the
error paths first (nothing may be left behind), then setup, setup again, repair and upgrade.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.booted.machine import GUEST_IP, Machine
from tests.booted.test_booted_service import _need_root_and_tools
from tests.helpers.agent import free_port

pytestmark = pytest.mark.booted

ROOT = Path(__file__).resolve().parents[2]
PIP_ARGS = "--no-index --find-links /root/wheels"
SSH_PORT = free_port()
OWNER_PASSWORD = "owner-pw-3141"  # owner is in the sudo group and sudo asks for this, as for a Spark's first user


class Laptop:
    """A user's side: HOME with ~/.ssh/id_ed25519 and the hosts file, `sparkdeck` as a subprocess."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="sparkdeck-laptop-"))
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sparkdeck-test", "-f", str(ssh / "id_ed25519")], check=True)
        self.public_key = (ssh / "id_ed25519.pub").read_text().strip()
        self.ssh_config = self.home / "ssh_config"
        self.ssh_config.write_text(
            f"Host *\n    IdentityFile {ssh / 'id_ed25519'}\n    IdentitiesOnly yes\n    UserKnownHostsFile {ssh / 'known_hosts'}\n"
            "    StrictHostKeyChecking accept-new\n    LogLevel ERROR\n"
        )
        self.wrapper = self.home / "ssh"
        self.wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.ssh_config} "$@"\n')
        self.wrapper.chmod(0o755)
        self.hosts = self.home / "config/sparkdeck/hosts.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKDECK_", "SSH_"))}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / "config"), SPARKDECK_SSH=str(self.wrapper), PYTHONPATH=str(ROOT), **extra)
        return env

    def sparkdeck(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, timeout=timeout, env=self.env(**env), stdin=subprocess.DEVNULL, cwd=ROOT
        )
        print(f"$ sparkdeck {' '.join(args)}  ({time.monotonic() - t0:.1f} s, rc {r.returncode})\n{r.stdout}{r.stderr}")
        return r

    def setup(self, user: str, *args: str, pip_args: str = PIP_ARGS, **env: str) -> subprocess.CompletedProcess:
        return self.sparkdeck("setup", f"{user}@{GUEST_IP}:{SSH_PORT}", "--name", "spark", "--pip-args", pip_args, *args, timeout=300, **env)

    def setup_in_terminal(self, *args: str, pip_args: str = PIP_ARGS, timeout: float = 300) -> tuple[subprocess.CompletedProcess, int]:
        """`sparkdeck setup owner@…` in a terminal (a pty), typing owner's password at each sudo prompt: (result, prompts).

        Output is stdout and stderr together, as a terminal shows them."""
        argv = [sys.executable, "-m", "tui.cli", "setup", f"owner@{GUEST_IP}:{SSH_PORT}", "--name", "spark", "--pip-args", pip_args, *args]
        master, slave = os.openpty()
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=self.env(), cwd=ROOT, start_new_session=True)
        os.close(slave)
        seen, prompts = b"", 0
        try:
            while time.monotonic() - t0 < timeout:
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the terminal's last writer exited
                        break
                    if not chunk:
                        break
                    seen += chunk
                    if seen.count(b"[sudo] password for owner") > prompts:
                        prompts += 1
                        os.write(master, OWNER_PASSWORD.encode() + b"\r")
                elif p.poll() is not None:
                    break
            rc = p.wait(timeout=max(1, timeout - (time.monotonic() - t0)))
        finally:
            os.close(master)
            if p.poll() is None:
                p.kill()
        out = seen.decode(errors="replace").replace("\r\n", "\n")
        print(f"$ sparkdeck setup owner@… {' '.join(args)} in a terminal  ({time.monotonic() - t0:.1f} s, rc {rc}, {prompts} sudo prompt(s))\n{out}")
        assert OWNER_PASSWORD not in out
        return subprocess.CompletedProcess(argv, rc, out, out), prompts


@pytest.fixture(scope="module")
def m():
    _need_root_and_tools()
    machine = Machine()
    laptop = Laptop()
    try:
        t0 = time.monotonic()
        machine.boot()
        gid = os.stat("/var/run/docker.sock").st_gid
        machine.sh(f'groupadd -g {gid} docker && echo "127.0.1.1 $(hostname)" >> /etc/hosts')  # sudo resolves its host name
        machine.add_user("owner", sudo=False, groups="sudo", password=OWNER_PASSWORD, public_key=laptop.public_key)
        machine.add_user("guest", sudo=False, public_key=laptop.public_key)
        machine.add_user("keyless", sudo=False, password="throwaway-pw-7")
        machine.start_sshd(SSH_PORT)
        print(f"booted, users and sshd on {GUEST_IP}:{SSH_PORT} in {time.monotonic() - t0:.0f} s")
        machine.laptop = laptop
        yield machine
    finally:
        machine.close_with_journal(60)
        shutil.rmtree(laptop.home, ignore_errors=True)


def untouched(m: Machine) -> list[str]:
    """What a failed setup must not leave: anything of the install, or its temp dir."""
    left = [p for p in ("/opt/sparkdeck", "/etc/sparkdeck", "/var/lib/sparkdeck", "/etc/systemd/system/sparkdeck-agent.service") if m.path(p).exists()]
    left += [str(p) for p in m.path("/tmp").glob("sparkdeck-setup.*")]
    if m.sh("id sparkdeck", check=False).returncode == 0:
        left.append("user sparkdeck")
    return left


# -- errors first: each one line with the fix, nothing left behind ------------------------


def built_wheel(m: Machine) -> str:
    """The project's wheel machine.py built this run, for runs that need not build their own (10 s each here)."""
    return str(sorted(m.path("/root/wheels").glob("sparkdeck-*.whl"))[-1])


def test_dry_run_prints_every_remote_command_and_changes_nothing(m):
    r = m.laptop.setup("owner", "--dry-run", "--wheel", built_wheel(m))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"-- owner@{GUEST_IP} true" in out and "'sh -s'  < (stdin)" in out  # reach, then the read-only check
    assert (
        "mktemp -d" in out
        and "cat > /tmp/sparkdeck-setup.DRYRUN/sparkdeck-" in out
        and 'sudo sh -c "$INSTALL_SCRIPT" sh' in out
        and '"$AGENT" install-service' in out
        and "rm -rf" in out
        and "== dry run: nothing was changed" in out
    )
    assert "ok    python    Python 3.11" in out and "ok    sudo      sudo will ask for your password once, in this terminal" in out
    assert untouched(m) == [] and not m.laptop.hosts.exists()


def test_a_user_without_sudo_rights_gets_one_line_and_nothing_changes(m):
    r = m.laptop.setup("guest")
    assert r.returncode == 1
    assert "FAIL  sudo      guest may not use sudo on 10.213.7.2 (not in the sudo group): ask an admin to run `sudo usermod -aG sudo guest`" in r.stdout, (
        r.stdout
    )
    assert r.stderr.strip() == "sparkdeck: 1 check(s) failed on 10.213.7.2 (above); nothing was changed"
    assert untouched(m) == [] and not m.laptop.hosts.exists()


def test_python_too_old_is_caught_by_the_check(m):
    shim = m.path("/usr/local/bin/python3")  # first on sshd's PATH: a Python 3.9 as far as setup can tell
    shim.write_text('#!/bin/sh\ncase "$*" in *version_info*) echo 3.9.2; exit 0;; esac\nexec /usr/bin/python3 "$@"\n')
    shim.chmod(0o755)
    try:
        r = m.laptop.setup("owner")
    finally:
        shim.unlink()
    assert r.returncode == 1
    line = [x for x in r.stdout.splitlines() if "FAIL" in x]
    assert line == [
        "  FAIL  python    Python 3.9.2 is too old: sparkdeck needs 3.11 or newer (DGX OS 7 / Ubuntu 24.04 have 3.12); install a newer python3, then run setup again"
    ], r.stdout
    assert untouched(m) == []


def test_sudo_that_asks_for_a_password_needs_a_terminal(m):
    r = m.laptop.setup("owner", "--wheel", built_wheel(m))
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == "sparkdeck: sudo on 10.213.7.2 asks for a password and this is not a terminal: run setup in a terminal (or allow owner sudo without a password)"
    )
    assert untouched(m) == []


def test_a_failed_install_removes_what_it_created(m):
    r, prompts = m.laptop.setup_in_terminal("--wheel", built_wheel(m), pip_args="--no-index --find-links /nonexistent")  # pip finds no dependencies
    assert r.returncode == 1 and prompts == 1
    assert "pip could not install sparkdeck and its dependencies" in r.stderr + r.stdout and "undone: /opt/sparkdeck" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("sparkdeck: the install on 10.213.7.2 failed (above); what this run created there was removed")
    assert "Traceback" not in r.stderr
    assert untouched(m) == [] and not m.laptop.hosts.exists()


def test_dry_run_does_not_install_a_key(m):
    r = m.laptop.setup("keyless", "--dry-run", "--yes")
    assert r.returncode == 1 and "without --dry-run setup offers to install" in r.stderr
    assert not m.path("/home/keyless/.ssh").exists()


def test_key_authentication_failing_offers_to_install_the_key_once(m):
    askpass = m.laptop.home / "askpass"  # stands in for the user typing the password at ssh's one prompt
    askpass.write_text("#!/bin/sh\necho throwaway-pw-7\n")
    askpass.chmod(0o700)
    r = m.laptop.setup("keyless", "--yes", SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
    assert "Install your public key" in r.stdout and "appends id_ed25519.pub to ~/.ssh/authorized_keys" in r.stdout, r.stdout
    assert m.laptop.public_key in m.path("/home/keyless/.ssh/authorized_keys").read_text()
    assert r.returncode == 1 and "FAIL  sudo      keyless may not use sudo" in r.stdout  # reached with the key: the checks ran
    alias = (m.laptop.home / ".ssh/sparkdeck.conf").read_text()
    assert f"Host spark\n    HostName {GUEST_IP}\n    User keyless\n    Port {SSH_PORT}\n" in alias
    assert (m.laptop.home / ".ssh/config").read_text().startswith("Include sparkdeck.conf\n")
    assert "throwaway-pw-7" not in (m.laptop.hosts.read_text() if m.laptop.hosts.exists() else "") + r.stdout + r.stderr


# -- setup, and setup again ------------------------------------------------------------


def test_setup_installs_the_service_on_a_free_port_and_status_answers(m):
    # 8611 is taken on the machine's loopback: setup picks the next free port
    m.sh("systemd-run --unit=squatter python3 -m http.server 8611 --bind 127.0.0.1")
    r, prompts = m.laptop.setup_in_terminal()
    assert r.returncode == 0 and prompts == 1, r.stdout  # one sudo session: one password prompt, in the terminal
    assert m.show("ActiveState")["ActiveState"] == "active"
    config = m.path("/etc/sparkdeck/agent.toml").read_text()
    assert "port = 8612" in config and 'models_home = "/home/owner"' in config, config
    hosts = m.laptop.hosts
    assert stat.S_IMODE(hosts.stat().st_mode) == 0o600
    text = hosts.read_text()
    assert f'url = "ssh://owner@{GUEST_IP}:{SSH_PORT}?agent_port=8612"' in text and 'token = "sdk_' in text, text
    assert "sdk_" not in r.stdout + r.stderr  # no token on the screen: neither the first one nor the laptop's
    tokens = m.sh("/opt/sparkdeck/bin/sparkdeck-agent token list --json").stdout
    assert [t["name"] for t in json.loads(tokens)] == [f"sparkdeck-{os.uname().nodename.split('.')[0]}"]  # 'admin', unseen, was revoked
    assert "== doctor on" in r.stdout
    assert not list(m.path("/tmp").glob("sparkdeck-setup.*")) and not list(m.path("/home/owner").glob("sparkdeck-setup.*"))
    status = m.laptop.sparkdeck("status", "spark", "--json", "--timeout", "15")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "ok"


def test_setup_again_changes_nothing_that_works(m):
    pid = m.show("MainPID")["MainPID"]
    hosts_before = m.laptop.hosts.read_text()
    tokens_before = m.path("/var/lib/sparkdeck/tokens.json").read_text()
    r = m.laptop.setup("owner")
    assert r.returncode == 0, r.stderr
    assert "== nothing to do: sparkdeck 0.1.0 is installed and active on 10.213.7.2, and hosts entry 'spark' works" in r.stdout
    assert "sudo sh -c" not in r.stdout
    assert m.show("MainPID")["MainPID"] == pid
    assert m.laptop.hosts.read_text() == hosts_before and m.path("/var/lib/sparkdeck/tokens.json").read_text() == tokens_before


def test_a_revoked_laptop_token_is_replaced_and_the_service_left_running(m):
    pid = m.show("MainPID")["MainPID"]
    name = f"sparkdeck-{os.uname().nodename.split('.')[0]}"
    m.sh(f"/opt/sparkdeck/bin/sparkdeck-agent token revoke {name}")
    r, prompts = m.laptop.setup_in_terminal()
    assert r.returncode == 0 and prompts == 1, r.stdout
    assert "is as new as" in r.stdout and "pip install" not in r.stdout and "== saved spark" in r.stdout
    assert m.show("MainPID")["MainPID"] == pid
    assert m.laptop.sparkdeck("status", "spark", "--json", "--timeout", "15").returncode == 0


def test_a_newer_wheel_upgrades_in_place_keeping_config_tokens_and_the_entry(m, tmp_path):
    # the same version with other contents (a rebuilt dev tree) counts as newer
    built = Path(built_wheel(m))
    wheel = tmp_path / built.name
    with zipfile.ZipFile(built) as src, zipfile.ZipFile(wheel, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("agent/_setup_upgrade_probe.txt", "new\n")
    pid = m.show("MainPID")["MainPID"]
    config, tokens, hosts = (m.path("/etc/sparkdeck/agent.toml").read_text(), m.path("/var/lib/sparkdeck/tokens.json").read_text(), m.laptop.hosts.read_text())
    r, prompts = m.laptop.setup_in_terminal("--wheel", str(wheel))
    assert r.returncode == 0 and prompts == 1, r.stdout
    assert "== upgrading sparkdeck 0.1.0 on 10.213.7.2 to 0.1.0" in r.stdout and "restart sparkdeck-agent (new version)" in r.stdout
    assert m.path("/opt/sparkdeck/lib/python3.11/site-packages/agent/_setup_upgrade_probe.txt").is_file()
    assert m.show("MainPID")["MainPID"] != pid and m.show("ActiveState")["ActiveState"] == "active"
    assert m.path("/etc/sparkdeck/agent.toml").read_text() == config and m.path("/var/lib/sparkdeck/tokens.json").read_text() == tokens
    assert m.laptop.hosts.read_text() == hosts and "hosts entry 'spark' works: kept" in r.stdout
    assert m.laptop.sparkdeck("status", "spark", "--json", "--timeout", "15").returncode == 0
