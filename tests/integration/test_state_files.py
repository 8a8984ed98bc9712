"""Every file in the state dir is 0600 (dirs 0700) whatever the umask, owned by the state dir's owner
whoever writes it; the CLI finds the installed service's state dir; doctor names the exact fix."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent import installed, statefiles
from agent.containers.catalog import ModelTemplate, Secrets, render
from tests.helpers.agent import ROOT

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def shared_tmp():
    """A directory other users can traverse (pytest's tmp_path is under a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="sparkdeck-test-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _python_for(user: str) -> list[str]:
    """This venv's Python, or (when the user cannot reach it, e.g. under /root) the system's 3.x with our paths."""
    probe = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", "import agent"], capture_output=True, cwd="/")
    if probe.returncode == 0:
        return [sys.executable]
    site = next(p for p in sys.path if p.endswith("site-packages"))
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.exists(system):
        pytest.skip(f"{user} can run neither {sys.executable} nor {system}")
    return ["env", f"PYTHONPATH={ROOT}:{site}", system]


def cli(*args: str, env: dict[str, str] | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["runuser", "-u", user, "--", *_python_for(user), "-m", "agent.cli", *args] if user else [sys.executable, "-m", "agent.cli", *args]
    full = {k: v for k, v in os.environ.items() if not k.startswith("SPARKDECK_")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env={**full, **(env or {})})


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to the state dir's owner is what root does")
def test_root_writing_into_a_users_state_dir_leaves_the_files_that_users(shared_tmp):
    """The bug in the issue: `sudo … token add` made tokens.json root:root and the agent lost every token."""
    state = shared_tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid)
    for args in (("token", "add", "laptop", "--scope", "read"), ("token", "add", "ci"), ("tls", "init")):
        r = cli(*args, "--state-dir", str(state))
        assert r.returncode == 0, r.stderr
    r = cli("token", "revoke", "ci", "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    for p in [*state.rglob("*")]:
        st = p.lstat()
        assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), p
        assert stat.S_IMODE(st.st_mode) == (0o700 if p.is_dir() else 0o600), p
    # and the user itself can read them: list as nobody
    r = cli("token", "list", "--json", "--state-dir", str(state), user="nobody")
    assert r.returncode == 0 and [t["name"] for t in json.loads(r.stdout)] == ["laptop"], r.stderr


def test_write_file_replaces_atomically_with_0600(tmp_path):
    target = tmp_path / "d" / "f"
    old = os.umask(0)
    try:
        statefiles.write_file(target, b"one")
        statefiles.write_file(target, b"two")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700 and not (tmp_path / "d" / "f.tmp").exists()


def test_cli_uses_the_installed_services_config_and_state_dir(tmp_path, monkeypatch):
    config = tmp_path / "agent.toml"
    config.write_text("port = 8700\n")
    for var in ("SPARKDECK_CONFIG", "SPARKDECK_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert installed.defaults(None, None, config_file=config) == (str(config), "/var/lib/sparkdeck")
    config.write_text('state_dir = "/srv/sparkdeck"\n')
    assert installed.defaults(None, None, config_file=config) == (str(config), None)  # the config's own state_dir
    assert installed.defaults(None, "/x", config_file=config) == (None, "/x")  # chosen: left alone
    monkeypatch.setenv("SPARKDECK_STATE_DIR", "/y")
    assert installed.defaults(None, None, config_file=config) == (None, None)
    monkeypatch.delenv("SPARKDECK_STATE_DIR")
    monkeypatch.setattr(os, "geteuid", lambda: 1234)  # another user: their own default
    assert installed.defaults(None, None, config_file=config) == (None, None)
    assert installed.defaults(None, None, config_file=tmp_path / "absent.toml") == (None, None)


def test_a_state_dir_the_service_could_not_read_and_a_missing_user_are_one_line_errors(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(installed, "STATE_DIR", state)
    monkeypatch.setattr(installed, "USER", "nobody")
    if os.geteuid() == 0:
        with pytest.raises(installed.InstalledError) as err:
            installed.check(state, None)
        msg = str(err.value)
        assert f"{state} is not the service's" in msg and f"chown -R nobody:nobody {state}" in msg and "\n" not in msg
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid) if os.geteuid() == 0 else None
    installed.check(state, None)  # owned by the service user: fine
    monkeypatch.setattr(installed, "USER", "sparkdeck-no-such-user")
    with pytest.raises(installed.InstalledError, match="its user 'sparkdeck-no-such-user' does not exist: run `sudo sparkdeck-agent install-service`"):
        installed.check(state, None)
    installed.check(tmp_path / "elsewhere", None)  # not the service's: nothing to check


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another user to be refused")
def test_an_unreadable_tokens_file_is_a_one_line_error_not_an_empty_list(shared_tmp):
    state = shared_tmp / "state"
    state.mkdir(mode=0o755)
    (state / "tokens.json").write_text('{"version": 1, "tokens": []}')
    os.chmod(state / "tokens.json", 0o600)
    r = cli("token", "list", "--state-dir", str(state), user="nobody")
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and f"cannot read {state / 'tokens.json'}: permission denied; run this with sudo" in r.stderr, r.stderr
    r = cli("token", "add", "x", "--state-dir", str(state), user="nobody")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "run this with sudo" in r.stderr, r.stderr


def test_doctor_flags_modes_with_the_exact_chmod_and_a_readable_secrets_env(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "secrets.env").write_text("HF_TOKEN=hf_doctortest\n")
    os.chmod(state / "secrets.env", 0o644)
    (state / "audit.log").write_text("")
    os.chmod(state / "audit.log", 0o640)
    r = cli("doctor", "--state-dir", str(state), "--simulate", "gb10")
    assert "hf_doctortest" not in r.stdout
    assert f"fix: chmod 600 {state / 'audit.log'}" in r.stdout, r.stdout
    assert f"{state / 'secrets.env'} is readable by other users" in r.stdout and f"fix: chmod 600 {state / 'secrets.env'}" in r.stdout
    checks = json.loads(cli("doctor", "--state-dir", str(state), "--simulate", "gb10", "--json").stdout)
    assert any(c["name"] == "secrets" and not c["ok"] for c in checks)
    os.chmod(state / "secrets.env", 0o600)
    os.chmod(state / "audit.log", 0o600)
    checks = json.loads(cli("doctor", "--state-dir", str(state), "--simulate", "gb10", "--json").stdout)
    assert [c["ok"] for c in checks if c["name"] in ("state_files", "secrets")] == [True]


def test_tilde_in_volumes_means_models_home():
    t = ModelTemplate(name="m", image="busybox:latest", volumes=["~/.cache/huggingface:/root/.cache/huggingface", "/data:/data", "~:/home"])
    spec = render(t, Secrets(None, {}), home=Path("/home/alice"))
    assert spec.body["HostConfig"]["Binds"] == ["/home/alice/.cache/huggingface:/root/.cache/huggingface", "/data:/data", "/home/alice:/home"]
    default = render(t, Secrets(None, {}))
    assert default.body["HostConfig"]["Binds"][0] == os.path.expanduser("~") + "/.cache/huggingface:/root/.cache/huggingface"


def test_audit_names_each_wrong_mode_and_leaves_symlinks_alone(tmp_path):
    state = tmp_path / "state"
    (state / "tls").mkdir(parents=True)
    os.chmod(state, 0o700)
    os.chmod(state / "tls", 0o755)
    (state / "seq").write_text("1")
    os.chmod(state / "seq", 0o644)
    (state / "link").symlink_to("/etc/passwd")
    fixes = sorted(p.fix for p in statefiles.audit(state, None))
    assert fixes == [f"chmod 600 {state / 'seq'}", f"chmod 700 {state / 'tls'}"]
