"""install-service (relocated root, real systemctl --root and systemd-analyze) and agent-side TLS."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from agent import service, tls
from tests.helpers.agent import ROOT, free_port, launch_agent


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_dry_run_prints_every_file_and_command_and_writes_nothing(tmp_path):
    out = cli("install-service", "--dry-run", "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "write      /etc/sparkdeck/agent.toml" in text
    assert "write      /etc/systemd/system/sparkdeck-agent.service" in text
    assert "  | Type=notify" in text and f"  | ExecStart={Path(sys.executable).parent}/sparkdeck-agent serve" in text
    assert "token      create control token 'admin'" in text
    assert f"run        systemctl --root={tmp_path} enable sparkdeck-agent.service" in text
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_dry_run_on_the_real_root_lists_system_commands():
    out = cli("install-service", "--dry-run", "--bind", "127.0.0.1", "--port", "8611")
    assert out.returncode == 0, out.stderr
    for cmd in ("systemctl daemon-reload", "systemctl enable --now sparkdeck-agent.service"):
        assert f"run        {cmd}" in out.stdout
    assert "useradd --system" in out.stdout or "unchanged  user sparkdeck" in out.stdout


def test_install_is_idempotent_and_the_installed_unit_verifies(tmp_path):
    first = cli("install-service", "--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip().splitlines()[-1]
    assert token.startswith("sdk_")
    unit = tmp_path / "etc/systemd/system/sparkdeck-agent.service"
    assert (tmp_path / "etc/systemd/system/multi-user.target.wants/sparkdeck-agent.service").is_symlink()
    assert stat.S_IMODE((tmp_path / "var/lib/sparkdeck/tokens.json").stat().st_mode) == 0o600
    assert 'host = "127.0.0.1"' in (tmp_path / "etc/sparkdeck/agent.toml").read_text()
    verify = subprocess.run([shutil.which("systemd-analyze") or "systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = cli("install-service", "--root", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert all(line.startswith("unchanged") for line in second.stdout.strip().splitlines()), second.stdout
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert "sdk_" not in second.stdout


def test_non_loopback_bind_opens_the_ip_allow_list_in_a_drop_in_and_asks_for_tls(tmp_path):
    out = cli("install-service", "--root", str(tmp_path), "--bind", "0.0.0.0")
    assert out.returncode == 0, out.stderr
    unit = (tmp_path / "etc/systemd/system/sparkdeck-agent.service").read_text()
    assert "IPAddressAllow=localhost\n" in unit  # the unit itself is the same for every bind
    dropin = tmp_path / "etc/systemd/system/sparkdeck-agent.service.d/lan.conf"
    assert "[Service]\nIPAddressAllow=any\n" in dropin.read_text()
    config = tmp_path / "etc/sparkdeck/agent.toml"
    assert "tls = true" in config.read_text()
    # back to loopback in the config (it is the user's): install-service again removes the drop-in
    config.write_text(config.read_text().replace('host = "0.0.0.0"', 'host = "127.0.0.1"'))
    again = cli("install-service", "--root", str(tmp_path))
    assert again.returncode == 0 and "remove     /etc/systemd/system/sparkdeck-agent.service.d/lan.conf" in again.stdout, again.stdout
    assert not dropin.exists()
    # and to a LAN address again, by editing the config only
    config.write_text(config.read_text().replace('host = "127.0.0.1"', 'host = "192.168.7.5"'))
    assert cli("install-service", "--root", str(tmp_path)).returncode == 0
    assert "binds 192.168.7.5" in dropin.read_text()
    clash = cli("install-service", "--root", str(tmp_path), "--bind", "127.0.0.1")
    assert clash.returncode == 2 and "binds 192.168.7.5; set host" in clash.stderr and clash.stderr.count("\n") == 1
    clash = cli("install-service", "--root", str(tmp_path), "--port", "9999")
    assert clash.returncode == 2 and "sets port 8611; set port = 9999 there" in clash.stderr
    # uninstall removes its drop-in and leaves one of yours (and their directory) alone
    mine = dropin.with_name("mine.conf")
    mine.write_text("[Service]\nNice=5\n")
    out = cli("uninstall-service", "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert not dropin.exists() and mine.is_file()


def test_lan_drop_in_is_separate_and_the_loopback_unit_rates_at_most_3_5(tmp_path):
    """The rating is for the unit as installed for loopback; the LAN drop-in only opens the IP allow list."""
    assert cli("install-service", "--root", str(tmp_path), "--bind", "0.0.0.0").returncode == 0
    assert (tmp_path / "etc/systemd/system/sparkdeck-agent.service.d/lan.conf").is_file()
    tool = shutil.which("systemd-analyze") or "systemd-analyze"
    loop = tmp_path / "loop"
    assert cli("install-service", "--root", str(loop)).returncode == 0
    r = subprocess.run([tool, "security", "--offline=yes", str(loop / "etc/systemd/system/sparkdeck-agent.service")], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr).group(1))
    print(f"loopback unit as installed: exposure {score}")
    assert score <= 3.5


def test_models_home_comes_from_sudo_user_or_the_flag_and_is_added_before_any_table(tmp_path):
    me = pwd.getpwnam("nobody")  # any user but root, as sudo sets it
    env = {**os.environ, "SUDO_USER": me.pw_name}
    out = subprocess.run([sys.executable, "-m", "agent.cli", "install-service", "--root", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    config = tmp_path / "etc/sparkdeck/agent.toml"
    assert tomllib.loads(config.read_text())["models_home"] == me.pw_dir
    # a config the user wrote, ending in a table: the key goes above the table, not into it
    other = tmp_path / "other"
    (other / "etc/sparkdeck").mkdir(parents=True)
    (other / "etc/sparkdeck/agent.toml").write_text("port = 8700\n\n[noise]\nidle_dba = 18\n")
    out = cli("install-service", "--root", str(other), "--models-home", "/home/alice")
    assert out.returncode == 0, out.stderr
    data = tomllib.loads((other / "etc/sparkdeck/agent.toml").read_text())
    assert data["models_home"] == "/home/alice" and data["noise"] == {"idle_dba": 18} and data["port"] == 8700
    assert cli("install-service", "--root", str(other), "--models-home", "/home/alice").stdout.count("unchanged  /etc/sparkdeck/agent.toml") == 1


def test_uninstall_keeps_state_unless_purged(tmp_path):
    assert cli("install-service", "--root", str(tmp_path)).returncode == 0
    out = cli("uninstall-service", "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "etc/systemd/system/sparkdeck-agent.service").exists()
    assert not (tmp_path / "etc/systemd/system/multi-user.target.wants/sparkdeck-agent.service").exists()
    assert (tmp_path / "var/lib/sparkdeck/tokens.json").exists()
    out = cli("uninstall-service", "--root", str(tmp_path), "--purge")
    assert out.returncode == 0 and not (tmp_path / "var/lib/sparkdeck").exists() and not (tmp_path / "etc/sparkdeck").exists()


def test_executable_in_a_home_directory_is_refused(tmp_path):
    with pytest.raises(service.ServiceError, match="ProtectHome"):
        service.install(root=tmp_path, exe=Path("/home/me/.venv/bin/sparkdeck-agent"))


def test_tls_init_and_fingerprint(tmp_path):
    out = cli("tls", "init", "--name", "spark.lan", "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    fp = out.stdout.strip().splitlines()[-1]
    assert fp.startswith("SHA256:") and len(fp) == 50
    assert stat.S_IMODE((tmp_path / "tls/key.pem").stat().st_mode) == 0o600
    assert cli("tls", "fingerprint", "--state-dir", str(tmp_path)).stdout.strip() == fp
    again = cli("tls", "init", "--state-dir", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "tls/cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spark.lan" in sans.get_values_for_type(x509.DNSName)


def test_serve_tls_answers_https_with_the_pinned_certificate(tmp_path):
    state = tmp_path / "state"
    _, _, fp = tls.init(state, ["localhost"])
    agent = launch_agent(state, "--simulate", "gb10", "--tls")
    ctx = ssl.create_default_context(cafile=str(state / "tls/cert.pem"))
    url = f"https://127.0.0.1:{agent.port}"
    r = httpx.get(url + "/api/v1/snapshot", headers=agent.headers(agent.read_token), verify=ctx)
    assert r.status_code == 200 and r.json()["type"] == "snapshot"
    served = ssl.get_server_certificate(("127.0.0.1", agent.port))
    assert tls.fingerprint_pem(served.encode()) == fp
    with pytest.raises(httpx.ConnectError):  # not trusted by the system store
        httpx.get(url + "/api/v1/health")
    agent.stop()


def test_tls_allows_a_non_loopback_bind_without_insecure(tmp_path):
    state = tmp_path / "state"
    tls.init(state)
    agent = launch_agent(state, "--simulate", "gb10", "--tls", "--host", "0.0.0.0")
    assert agent.listening_addresses() == {"0.0.0.0"}  # bound to every address, not loopback (which 127.0.0.1 reaches either way)
    ctx = ssl.create_default_context(cafile=str(state / "tls/cert.pem"))
    assert httpx.get(f"https://127.0.0.1:{agent.port}/api/v1/health", verify=ctx).json() == {"status": "ok"}
    agent.stop()


def test_serve_tls_without_a_certificate_is_a_clear_error(tmp_path):
    out = cli("serve", "--tls", "--state-dir", str(tmp_path), "--port", str(free_port()), "--simulate", "gb10")
    assert out.returncode == 2 and "tls init" in out.stderr
