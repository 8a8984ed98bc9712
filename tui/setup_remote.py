"""What `sparkdeck setup` runs on the remote machine, and how it reads the answers (no I/O here).

CHECK_SCRIPT is read-only and prints ``key=value`` lines; ``parse_facts`` and ``assess``
turn them into plain-word findings, each failure one line with its fix. INSTALL_SCRIPT
is the one sudo session (so sudo asks for a password at most once): it records what
already existed and, on any failure, removes what this run created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_PYTHON = (3, 11)
MIN_FREE_KIB = 400 * 1024  # the venv with its dependencies is about 150 MB; leave room for pip's cache and the history
OPT = "/opt/sparkdeck"
AGENT = f"{OPT}/bin/sparkdeck-agent"
STAMP = f"{OPT}/sparkdeck-wheel.sha256"  # the installed wheel's content hash: a rebuilt dev wheel of the same version is newer
DEFAULT_AGENT_PORT = 8611
SUDO_GROUPS = {"sudo", "wheel", "admin"}  # Debian/Ubuntu, Fedora/Arch, old Ubuntu

CHECK_SCRIPT = r"""
echo "user=$(id -un)"
echo "home=$HOME"
echo "groups=$(id -nG)"
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os=${PRETTY_NAME:-unknown}"
echo "arch=$(uname -m)"
if command -v python3 >/dev/null 2>&1; then
  echo "python=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
  if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then echo venv=yes; else echo venv=no; fi
else
  echo python=
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd=yes; else echo systemd=no; fi
if command -v sudo >/dev/null 2>&1; then
  if sudo -n true >/dev/null 2>&1; then echo sudo=nopasswd
  elif sudo -n -l 2>&1 | grep -q 'may not run sudo'; then echo sudo=denied
  else echo sudo=password; fi
else
  echo sudo=missing
fi
if [ -S /var/run/docker.sock ]; then echo docker=yes; else echo docker=no; fi
if getent group docker >/dev/null 2>&1; then echo docker_group=yes; else echo docker_group=no; fi
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)"
else
  echo nvidia=
fi
d=/opt; [ -d /opt ] || d=/
echo "disk_free_kib=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}')"
if [ -x __AGENT__ ]; then
  echo "installed=$(__OPT__/bin/python -c 'import agent; print(agent.__version__)' 2>/dev/null)"
  echo "installed_sha256=$(cat __STAMP__ 2>/dev/null)"
else
  echo installed=
fi
if [ -e __OPT__ ]; then echo opt_exists=yes; else echo opt_exists=no; fi
echo "service=$(systemctl is-active sparkdeck-agent 2>/dev/null)"
python3 - <<'PY' 2>/dev/null
import socket
try:
    import tomllib
    with open("/etc/sparkdeck/agent.toml", "rb") as f:
        print("agent_port=%d" % int(tomllib.load(f).get("port", __PORT__)))
except FileNotFoundError:
    print("agent_port=")
except Exception:
    print("agent_port=unreadable")
for port in range(__PORT__, __PORT__ + 40):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print("free_port=%d" % port)
    break
PY
echo end=1
"""
CHECK_SCRIPT = CHECK_SCRIPT.replace("__AGENT__", AGENT).replace("__OPT__", OPT).replace("__STAMP__", STAMP).replace("__PORT__", str(DEFAULT_AGENT_PORT))


@dataclass
class Facts:
    user: str = ""
    home: str = ""
    groups: tuple[str, ...] = ()
    os: str = "unknown"
    arch: str = ""
    python: str = ""
    venv: bool = False
    systemd: bool = False
    sudo: str = "missing"  # nopasswd | password | denied | missing
    docker: bool = False
    docker_group: bool = False
    nvidia: str = ""
    disk_free_kib: int | None = None
    installed: str = ""  # the version under /opt/sparkdeck, "" when none
    installed_sha256: str = ""
    opt_exists: bool = False
    service: str = ""  # systemctl is-active: active, inactive, failed, ...
    agent_port: int | None = None  # from an existing /etc/sparkdeck/agent.toml
    free_port: int | None = None  # the first free loopback port from 8611
    complete: bool = False  # the script ran to its end


class CheckOutputError(ValueError):
    pass


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def parse_facts(text: str) -> Facts:
    """CHECK_SCRIPT's key=value lines -> Facts; unknown keys and stray lines (a chatty login shell) are ignored."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[a-z_0-9]+", key):
            raw[key] = value.strip()
    if "user" not in raw:
        raise CheckOutputError("the remote check printed nothing sparkdeck understands (is the login shell a POSIX shell?)")
    return Facts(
        user=raw.get("user", ""),
        home=raw.get("home", ""),
        groups=tuple(raw.get("groups", "").split()),
        os=raw.get("os") or "unknown",
        arch=raw.get("arch", ""),
        python=raw.get("python", ""),
        venv=raw.get("venv") == "yes",
        systemd=raw.get("systemd") == "yes",
        sudo=raw.get("sudo", "missing"),
        docker=raw.get("docker") == "yes",
        docker_group=raw.get("docker_group") == "yes",
        nvidia=raw.get("nvidia", ""),
        disk_free_kib=_int(raw.get("disk_free_kib", "")),
        installed=raw.get("installed", ""),
        installed_sha256=raw.get("installed_sha256", ""),
        opt_exists=raw.get("opt_exists") == "yes",
        service=raw.get("service", ""),
        agent_port=_int(raw.get("agent_port", "")),
        free_port=_int(raw.get("free_port", "")),
        complete=raw.get("end") == "1",
    )


def version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


@dataclass(frozen=True)
class Finding:
    what: str
    level: str  # ok | note | fail
    text: str


def assess(f: Facts, host: str) -> list[Finding]:
    """Plain words for each check; a ``fail`` says what to do in the same line."""
    out: list[Finding] = []
    add = lambda what, level, text: out.append(Finding(what, level, text))  # noqa: E731
    arch_note = {"aarch64": " (as on a DGX Spark)", "x86_64": ""}.get(f.arch)
    add(
        "system",
        "ok" if arch_note is not None else "note",
        f"{f.os}, {f.arch or 'unknown architecture'}{arch_note if arch_note is not None else ' (untested architecture)'}",
    )
    py = version_tuple(f.python)
    if not f.python or py is None:
        add("python", "fail", f"no python3 on {host}: install it (sudo apt install python3 python3-venv), then run setup again")
    elif py[:2] < MIN_PYTHON:
        add(
            "python",
            "fail",
            f"Python {f.python} is too old: sparkdeck needs {'.'.join(map(str, MIN_PYTHON))} or newer (DGX OS 7 / Ubuntu 24.04 have 3.12); install a newer python3, then run setup again",
        )
    elif not f.venv:
        add("python", "fail", f"Python {f.python} has no venv module: sudo apt install python3-venv, then run setup again")
    else:
        add("python", "ok", f"Python {f.python} with venv")
    if f.systemd:
        add("systemd", "ok", "systemd is running")
    else:
        add("systemd", "fail", f"{host} does not run systemd, which the service needs; run `sparkdeck-agent serve` there yourself instead")
    state = f.sudo
    if state == "password" and not set(f.groups) & SUDO_GROUPS:
        # sudo -n cannot tell "needs a password" from "not allowed" without the password: the admin groups can
        state = "denied"
    sudo = {
        "nopasswd": ("ok", "sudo works without a password"),
        "password": ("ok", "sudo will ask for your password once, in this terminal"),
        "denied": (
            "fail",
            f"{f.user or 'this user'} may not use sudo on {host} (not in the sudo group): ask an admin to run `sudo usermod -aG sudo {f.user or 'USER'}`, or set up as another user",
        ),
        "missing": ("fail", f"sudo is not installed on {host}: as root there, apt install sudo and add {f.user or 'your user'} to the sudo group"),
    }.get(state, ("fail", f"cannot tell whether sudo works on {host} ({f.sudo})"))
    add("sudo", *sudo)
    if not f.docker:
        add("docker", "fail", f"no Docker engine on {host} (/var/run/docker.sock): install Docker Engine (DGX OS ships it), then run setup again")
    elif not f.docker_group:
        add(
            "docker",
            "note",
            "Docker runs, but there is no docker group: the service will not be able to reach it (sudo groupadd docker; sudo systemctl restart docker)",
        )
    else:
        add("docker", "ok", "Docker engine and its docker group (the service joins the group)")
    add(
        "gpu",
        "ok" if f.nvidia else "note",
        f"NVIDIA driver {f.nvidia}" if f.nvidia else "no nvidia-smi: no NVIDIA driver found (the agent still runs; GPU panels stay empty)",
    )
    if f.disk_free_kib is not None and f.disk_free_kib < MIN_FREE_KIB:
        add("disk", "fail", f"only {f.disk_free_kib // 1024} MB free under /opt: free at least {MIN_FREE_KIB // 1024} MB, then run setup again")
    elif f.disk_free_kib is not None:
        add(
            "disk",
            "ok",
            f"{f.disk_free_kib // 1024 // 1024} GB free under /opt" if f.disk_free_kib >= 1024 * 1024 else f"{f.disk_free_kib // 1024} MB free under /opt",
        )
    if f.installed:
        add("sparkdeck", "ok", f"sparkdeck {f.installed} installed in {OPT}; service {f.service or 'unknown'}")
    return out


def agent_port(f: Facts) -> int | None:
    """The port the service will listen on: an existing config's, else 8611 or the next free one."""
    if f.agent_port:
        return f.agent_port
    return f.free_port


# The one sudo session. Positional arguments (sh -c SCRIPT sh ARGS...):
#   1 wheel path   2 temp dir (the SSH user's, gets the token)   3 port for a new config ("" keeps)
#   4 token scope ("" = no token)   5 token name   6 pip args   7 "1" = install the wheel   8 wheel content hash
INSTALL_SCRIPT = r"""
set -u
WHEEL=$1 TMP=$2 PORT=$3 SCOPE=$4 NAME=$5 PIP_ARGS=$6 UPGRADE=$7 SHA=$8
OPT=__OPT__ AGENT=__AGENT__
new_opt=0 new_unit=0 new_config=0
[ -e "$OPT" ] || new_opt=1
[ -e /etc/systemd/system/sparkdeck-agent.service ] || new_unit=1
[ -e /etc/sparkdeck ] || [ -e /var/lib/sparkdeck ] || new_config=1
undo() {
  if [ $new_unit = 1 ] && [ -x "$AGENT" ]; then
    if [ $new_config = 1 ]; then "$AGENT" uninstall-service --purge >/dev/null 2>&1; else "$AGENT" uninstall-service >/dev/null 2>&1; fi
    echo "undone: the service this run installed"
  fi
  if [ $new_opt = 1 ]; then rm -rf "$OPT"; echo "undone: $OPT"; fi
}
fail() { trap - INT TERM HUP; echo "sparkdeck setup: $*" >&2; undo; exit 1; }
trap 'fail "interrupted"' INT TERM HUP  # Ctrl-C in the terminal (ssh -t passes it on) or a dropped connection
say() { echo "  $*"; }
if [ $new_opt = 1 ]; then
  say "python3 -m venv $OPT"
  python3 -m venv "$OPT" || fail "python3 -m venv $OPT failed (see above)"
fi
if [ "$UPGRADE" = 1 ]; then
  say "$OPT/bin/pip install $PIP_ARGS $(basename "$WHEEL")"
  # shellcheck disable=SC2086  # PIP_ARGS is a list of options
  "$OPT/bin/pip" install -q --disable-pip-version-check $PIP_ARGS "$WHEEL" \
    || fail "pip could not install sparkdeck and its dependencies (see above): check that $(hostname) reaches PyPI, or pass --pip-args"
  "$OPT/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$WHEEL" >/dev/null \
    || fail "pip could not reinstall the wheel (see above)"
  echo "$SHA" > "$OPT/sparkdeck-wheel.sha256"
fi
say "sparkdeck-agent install-service${PORT:+ --port $PORT}"
out=$("$AGENT" install-service ${PORT:+--port "$PORT"} 2>&1); rc=$?
# the first token is printed once: it never leaves the machine (setup makes its own below)
printf '%s\n' "$out" | grep -v '^sdk_' | grep -v 'shown once' | sed 's/^/    /'
[ $rc = 0 ] || fail "install-service failed (above)"
if [ "$UPGRADE" = 1 ] && [ $new_unit = 0 ]; then
  say "systemctl restart sparkdeck-agent (new version)"
  systemctl restart sparkdeck-agent || fail "the service did not restart: journalctl -u sparkdeck-agent"
fi
if ! systemctl is-active -q sparkdeck-agent; then  # installed earlier and stopped since: install-service leaves it be
  say "systemctl start sparkdeck-agent"
  systemctl start sparkdeck-agent
fi
systemctl is-active -q sparkdeck-agent || fail "the service is not active: journalctl -u sparkdeck-agent -n 50"
case "$out" in *"created control token 'admin'"*)
  "$AGENT" token revoke admin >/dev/null 2>&1 && say "revoked the first token 'admin' (nobody saw it; setup adds its own)";;
esac
if [ -n "$SCOPE" ]; then
  "$AGENT" token revoke "$NAME" >/dev/null 2>&1  # an earlier run's token of this laptop, which no longer worked
  tok=$("$AGENT" token add "$NAME" --scope "$SCOPE" 2>&1 | tail -n 1)
  case "$tok" in sdk_*) ;; *) fail "token add failed: $tok";; esac
  (umask 077; printf '%s\n' "$tok" > "$TMP/token") && chown "${SUDO_USER:-root}" "$TMP/token" || fail "cannot hand the token over in $TMP"
  say "token add $NAME --scope $SCOPE"
fi
echo "== doctor on $(hostname)"
"$AGENT" doctor 2>&1 | sed 's/^/    /'
exit 0
"""
INSTALL_SCRIPT = INSTALL_SCRIPT.replace("__OPT__", OPT).replace("__AGENT__", AGENT)
