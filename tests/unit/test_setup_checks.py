"""`sparkdeck setup`: reading the remote check's output, the findings' words, and the upgrade decision.

The whole command runs for real against sshd in a booted systemd: tests/booted/test_booted_setup.py.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tui import setup_remote as remote
from tui.setup import SetupError, is_newer, parse_destination, ssh_url, wheel_content_hash, wheel_version

SPARK = """\
Welcome to DGX OS!   (a chatty login shell: ignored)
user=nvidia
home=/home/nvidia
groups=nvidia adm sudo docker
os=Ubuntu 24.04.2 LTS
arch=aarch64
python=3.12.3
venv=yes
systemd=yes
sudo=password
docker=yes
docker_group=yes
nvidia=580.95.05
disk_free_kib=3221225472
installed=
opt_exists=no
service=inactive
agent_port=
free_port=8611
end=1
"""


def facts(**changes: str) -> remote.Facts:
    text = SPARK
    for key, value in changes.items():
        lines = [line for line in text.splitlines() if not line.startswith(key + "=")]
        text = "\n".join(lines + [f"{key}={value}"])
    return remote.parse_facts(text)


def levels(f: remote.Facts) -> dict[str, tuple[str, str]]:
    return {x.what: (x.level, x.text) for x in remote.assess(f, "spark")}


def test_a_spark_passes_every_check_in_plain_words():
    f = remote.parse_facts(SPARK)
    assert f.complete and f.arch == "aarch64" and f.groups == ("nvidia", "adm", "sudo", "docker") and f.free_port == 8611
    got = levels(f)
    assert all(level == "ok" for level, _ in got.values()), got
    assert got["system"][1] == "Ubuntu 24.04.2 LTS, aarch64 (as on a DGX Spark)"
    assert got["python"][1] == "Python 3.12.3 with venv"
    assert got["sudo"][1] == "sudo will ask for your password once, in this terminal"
    assert got["gpu"][1] == "NVIDIA driver 580.95.05"
    assert got["disk"][1] == "3072 GB free under /opt"
    assert remote.agent_port(f) == 8611


@pytest.mark.parametrize(
    "changes, what, words",
    [
        ({"python": "3.9.2"}, "python", "Python 3.9.2 is too old: sparkdeck needs 3.11 or newer"),
        ({"python": ""}, "python", "sudo apt install python3 python3-venv"),
        ({"venv": "no"}, "python", "sudo apt install python3-venv"),
        ({"systemd": "no"}, "systemd", "does not run systemd"),
        ({"sudo": "denied"}, "sudo", "nvidia may not use sudo on spark (not in the sudo group): ask an admin to run `sudo usermod -aG sudo nvidia`"),
        ({"groups": "nvidia docker"}, "sudo", "nvidia may not use sudo on spark (not in the sudo group)"),
        ({"sudo": "missing"}, "sudo", "apt install sudo"),
        ({"docker": "no"}, "docker", "install Docker Engine"),
        ({"disk_free_kib": "102400"}, "disk", "only 100 MB free under /opt: free at least 400 MB"),
    ],
)
def test_each_failure_is_one_line_with_its_fix(changes, what, words):
    got = levels(facts(**changes))
    level, text = got[what]
    assert level == "fail" and words in text and "\n" not in text, got[what]
    assert "then run setup again" in text or "instead" in text or "another user" in text or "sudo group" in text


def test_notes_do_not_stop_setup():
    got = levels(facts(nvidia="", arch="riscv64", docker_group="no"))
    assert got["gpu"][0] == got["system"][0] == got["docker"][0] == "note"
    assert "untested architecture" in got["system"][1]


def test_an_existing_config_keeps_its_port_and_a_taken_8611_moves_on():
    assert remote.agent_port(facts(agent_port="9000", free_port="8612")) == 9000
    assert remote.agent_port(facts(free_port="8613")) == 8613
    assert remote.agent_port(facts(free_port="")) is None


def test_output_without_the_end_marker_or_without_anything_known():
    assert not remote.parse_facts("user=x\n").complete
    with pytest.raises(remote.CheckOutputError):
        remote.parse_facts("bash: sh: command not found\n")


def test_the_check_script_runs_here_and_parses(tmp_path):
    """The real script under this machine's sh: every key comes out, whatever this machine is."""
    out = subprocess.run(["sh", "-s"], input=remote.CHECK_SCRIPT, capture_output=True, text=True, timeout=60)
    f = remote.parse_facts(out.stdout)
    assert f.complete and f.user and f.arch and f.python and f.sudo in ("nopasswd", "password", "denied", "missing"), out


def _wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_the_content_hash_ignores_the_zip_and_record_but_not_the_code(tmp_path):
    a = _wheel(tmp_path / "sparkdeck-0.1.0-py3-none-any.whl", {"agent/x.py": "1", "sparkdeck-0.1.0.dist-info/RECORD": "a"})
    b = _wheel(tmp_path / "b.whl", {"sparkdeck-0.1.0.dist-info/RECORD": "different", "agent/x.py": "1"})
    c = _wheel(tmp_path / "c.whl", {"agent/x.py": "2"})
    assert wheel_content_hash(a) == wheel_content_hash(b) != wheel_content_hash(c)
    assert wheel_version(a) == "0.1.0"
    with pytest.raises(SetupError):
        wheel_version(tmp_path / "b.whl")


def test_upgrade_only_when_newer():
    assert is_newer("0.1.0", "h", facts(installed=""))
    assert is_newer("0.2.0", "h", facts(installed="0.1.0", installed_sha256="h"))
    assert not is_newer("0.1.0", "h", facts(installed="0.2.0", installed_sha256="x"))  # never downgrades
    assert not is_newer("0.1.0", "h", facts(installed="0.1.0", installed_sha256="h"))
    assert is_newer("0.1.0", "h2", facts(installed="0.1.0", installed_sha256="h"))  # a rebuilt dev tree


def test_destinations_and_urls():
    t = parse_destination("owner@spark:2222")
    assert (t.user, t.host, t.port) == ("owner", "spark", 2222)
    assert ssh_url(t, 8611) == "ssh://owner@spark:2222"
    assert ssh_url(parse_destination("spark"), 8612) == "ssh://spark?agent_port=8612"
    for bad in ("-oProxyCommand=x", "a b", "us;er@host"):
        with pytest.raises(SetupError):
            parse_destination(bad)
