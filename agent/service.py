"""install-service / uninstall-service: the agent as a hardened systemd service.

A plan is a list of steps (files to write, commands to run), built from what is
already on the machine, so running it twice changes nothing the second time and
``--dry-run`` can print exactly what would happen. ``root`` relocates every path
(for tests and image builds); commands are then printed, never run.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from agent.installed import CONFIG_DIR, STATE_DIR, USER
from agent.settings import DEFAULT_PORT, is_loopback

UNIT_NAME = "sparkdeck-agent.service"
UNIT_DIR = Path("/etc/systemd/system")
DROPIN = UNIT_DIR / (UNIT_NAME + ".d") / "lan.conf"
TEMPLATE_EXEC = "/opt/sparkdeck/bin/sparkdeck-agent"
# Written only while agent.toml binds beyond loopback: the unit itself keeps IPAddressAllow=localhost
# (and its security rating) for the default bind. An allow entry wins over IPAddressDeny=any.
LAN_DROPIN = """# Written by `sparkdeck-agent install-service` because /etc/sparkdeck/agent.toml binds {host}
# (beyond loopback, with TLS): let LAN clients reach it. Removed again when the bind is loopback.
[Service]
IPAddressAllow=any
"""


class ServiceError(RuntimeError):
    pass


@dataclass
class Plan:
    root: Path
    dry_run: bool
    lines: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    token: str | None = None  # printed last, once

    def path(self, p: Path) -> Path:
        return self.root / p.relative_to("/") if self.root != Path("/") else p

    def say(self, text: str) -> None:
        self.lines.append(text)

    def write(self, target: Path, content: str, mode: int, owner: str | None = None) -> bool:
        real = self.path(target)
        if real.exists() and real.read_text() == content:
            self.say(f"unchanged  {target}")
            return False
        self.say(f"write      {target} (mode {mode:o}{', owner ' + owner if owner else ''})")
        if self.dry_run:
            self.say("\n".join("  | " + line for line in content.rstrip("\n").split("\n")))
            return True
        real.parent.mkdir(parents=True, exist_ok=True)
        tmp = real.with_name(real.name + ".tmp")
        tmp.write_text(content)
        os.chmod(tmp, mode)
        if owner and self.root == Path("/"):
            shutil_chown(tmp, owner)
        os.replace(tmp, real)
        return True

    def run(self, *cmd: str, offline_ok: bool = False) -> None:
        """Run a command; under a relocated root only those that work offline (systemctl --root) run."""
        self.say("run        " + shlex.join(cmd))
        self.commands.append(list(cmd))
        if self.dry_run or (self.root != Path("/") and not offline_ok):
            return
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ServiceError(f"`{shlex.join(cmd)}` failed: {(r.stderr or r.stdout).strip()}")


def shutil_chown(path: Path, user: str) -> None:
    import shutil

    shutil.chown(path, user, user)


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def _user_exists(name: str) -> bool:
    return _exists(pwd.getpwnam, name)


def _group_exists(name: str) -> bool:
    return _exists(grp.getgrnam, name)


def agent_executable() -> Path:
    exe = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "sparkdeck-agent" else Path(sys.executable).parent / "sparkdeck-agent"
    return exe


def render_unit(exe: Path, *, docker_group: bool) -> str:
    text = resources.files("agent").joinpath("sparkdeck-agent.service").read_text()
    text = text.replace(TEMPLATE_EXEC, str(exe))
    if not docker_group:
        text = text.replace("SupplementaryGroups=docker\n", "# SupplementaryGroups=docker   (no docker group on this machine when installed)\n")
    return text


def invoking_home() -> Path | None:
    """The home of the user who ran sudo: where their model cache (~/.cache/huggingface) is."""
    name = os.environ.get("SUDO_USER")
    if not name or name == "root":
        return None
    try:
        return Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        return None


def _models_home_line(home: Path) -> str:
    return f'# `~` in model volumes means this home (its ~/.cache/huggingface), not the service user\'s.\nmodels_home = "{home}"\n'


def with_models_home(text: str, home: Path) -> str:
    """The config with a models_home line added before its first table (a key after one would land in it)."""
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    if at == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines[:at] + [_models_home_line(home)] + lines[at:])


def render_config(bind: str, port: int, models_home: Path | None = None) -> str:
    return (
        "# sparkdeck agent configuration; see `sparkdeck-agent serve --help` and the README.\n"
        f'host = "{bind}"\n'
        f"port = {port}\n"
        "interval_s = 1.0\n"
        + (_models_home_line(models_home) if models_home else "")
        + ("" if is_loopback(bind) else "# A non-loopback bind needs TLS: run `sparkdeck-agent tls init` and set tls = true.\ntls = true\n")
    )


def _read_config(path: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read {path}: {exc}; fix it or move it aside, then run install-service again") from None


def install(
    *,
    bind: str | None = None,
    port: int | None = None,
    models_home: Path | None = None,
    dry_run: bool = False,
    root: Path = Path("/"),
    exe: Path | None = None,
) -> Plan:
    plan = Plan(root=root, dry_run=dry_run)
    exe = exe or agent_executable()
    if str(exe).startswith(("/home/", "/root/")):
        raise ServiceError(
            f"{exe} is under a home directory, which the service cannot see (ProtectHome=yes).\n"
            "  Install sparkdeck system-wide first: sudo python3 -m venv /opt/sparkdeck && sudo /opt/sparkdeck/bin/pip install sparkdeck\n"
            "  then run: sudo /opt/sparkdeck/bin/sparkdeck-agent install-service"
        )
    if root == Path("/") and not dry_run and os.geteuid() != 0:
        raise ServiceError("install-service needs root: run it with sudo (or --dry-run to see what it would do)")
    if _user_exists(USER) or root != Path("/") and plan.path(STATE_DIR).exists():
        plan.say(f"unchanged  user {USER}")
    else:
        plan.run("useradd", "--system", "--user-group", "--home-dir", str(STATE_DIR), "--no-create-home", "--shell", "/usr/sbin/nologin", USER)
    for d, mode in ((CONFIG_DIR, 0o755), (STATE_DIR, 0o700)):
        real = plan.path(d)
        if real.is_dir():
            plan.say(f"unchanged  {d}/")
        else:
            plan.say(f"mkdir      {d}/ (mode {mode:o})")
            if not dry_run:
                real.mkdir(parents=True, mode=mode)
                if d == STATE_DIR and root == Path("/"):
                    shutil_chown(real, USER)
    config = plan.path(CONFIG_DIR / "agent.toml")
    models_home = models_home or invoking_home()
    if config.exists():
        current = _read_config(config)
        host = str(current.get("host", "127.0.0.1"))
        if bind is not None and bind != host:
            raise ServiceError(
                f'{CONFIG_DIR / "agent.toml"} binds {host}; set host = "{bind}" there (it is yours, install-service keeps it), then run install-service again'
            )
        if port is not None and port != current.get("port", DEFAULT_PORT):
            raise ServiceError(
                f"{CONFIG_DIR / 'agent.toml'} sets port {current.get('port', DEFAULT_PORT)}; set port = {port} there, then run install-service again"
            )
        if models_home and "models_home" not in current:
            plan.write(CONFIG_DIR / "agent.toml", with_models_home(config.read_text(encoding="utf-8"), models_home), 0o644)
        else:
            plan.say(f"unchanged  {CONFIG_DIR / 'agent.toml'} (kept: it is yours)")
    else:
        host = bind or "127.0.0.1"
        plan.write(CONFIG_DIR / "agent.toml", render_config(host, port or DEFAULT_PORT, models_home), 0o644)
    _repair_state(plan)
    _first_token(plan)
    changed = plan.write(UNIT_DIR / UNIT_NAME, render_unit(exe, docker_group=_group_exists("docker")), 0o644)
    changed = _lan_dropin(plan, host) or changed
    wants = plan.path(Path("/etc/systemd/system/multi-user.target.wants") / UNIT_NAME)
    enabled = wants.is_symlink() or wants.exists()  # under --root the link points outside the root
    if root != Path("/"):
        if not enabled:
            plan.run("systemctl", f"--root={root}", "enable", UNIT_NAME, offline_ok=True)
        else:
            plan.say(f"unchanged  {UNIT_NAME} enabled")
        return plan
    if changed:
        plan.run("systemctl", "daemon-reload")
    if not enabled:
        plan.run("systemctl", "enable", "--now", UNIT_NAME)
    elif changed:
        plan.run("systemctl", "restart", UNIT_NAME)
    else:
        plan.say(f"unchanged  {UNIT_NAME} enabled")
    return plan


def _lan_dropin(plan: Plan, host: str) -> bool:
    """The drop-in that opens the IP allow list, present exactly while the config binds beyond loopback."""
    if not is_loopback(host):
        return plan.write(DROPIN, LAN_DROPIN.format(host=host), 0o644)
    real = plan.path(DROPIN)
    if not real.exists():
        return False
    plan.say(f"remove     {DROPIN} (the config binds loopback again)")
    if not plan.dry_run:
        real.unlink()
    return True


def _repair_state(plan: Plan) -> None:
    """Give every file in the state dir back to the service user, 0600/0700 (an older CLI run as root left some root's)."""
    from agent import statefiles

    if plan.root != Path("/") or not plan.path(STATE_DIR).is_dir() or not _user_exists(USER):
        return
    for problem in statefiles.audit(STATE_DIR, USER):
        plan.say(f"fix        {problem.what}")
        plan.run(*shlex.split(problem.fix))


def _first_token(plan: Plan) -> None:
    from agent.auth import TokenStore

    tokens = plan.path(STATE_DIR / "tokens.json")
    store = TokenStore(tokens)
    if store.list():
        plan.say(f"unchanged  tokens ({len(store.list())} exist)")
        return
    if plan.dry_run:
        plan.say(f"token      create control token 'admin' in {STATE_DIR / 'tokens.json'} (printed once)")
        return
    token = store.add("admin", "control")
    if plan.root == Path("/"):
        shutil_chown(tokens, USER)
    plan.say(f"token      created control token 'admin' in {STATE_DIR / 'tokens.json'}")
    plan.token = token


def uninstall(*, purge: bool = False, dry_run: bool = False, root: Path = Path("/")) -> Plan:
    plan = Plan(root=root, dry_run=dry_run)
    if root == Path("/") and not dry_run and os.geteuid() != 0:
        raise ServiceError("uninstall-service needs root: run it with sudo")
    unit = plan.path(UNIT_DIR / UNIT_NAME)
    if unit.exists():
        if root != Path("/"):
            plan.run("systemctl", f"--root={root}", "disable", UNIT_NAME, offline_ok=True)
        else:
            plan.run("systemctl", "disable", "--now", UNIT_NAME)
        plan.say(f"remove     {UNIT_DIR / UNIT_NAME}")
        if not dry_run:
            unit.unlink()
        if plan.path(DROPIN).exists():
            plan.say(f"remove     {DROPIN}")
            if not dry_run:
                plan.path(DROPIN).unlink()
                try:
                    plan.path(DROPIN.parent).rmdir()
                except OSError:
                    pass  # drop-ins of your own stay, and so does their directory
        if root == Path("/"):
            plan.run("systemctl", "daemon-reload")
    else:
        plan.say(f"unchanged  {UNIT_NAME} not installed")
    if purge:
        import shutil

        for d in (STATE_DIR, CONFIG_DIR):
            if plan.path(d).exists():
                plan.say(f"remove     {d}/")
                if not dry_run:
                    shutil.rmtree(plan.path(d))
        if _user_exists(USER) and root == Path("/"):
            plan.run("userdel", USER)
    else:
        plan.say(f"kept       {STATE_DIR}/ and {CONFIG_DIR}/ (tokens, audit log, config); --purge removes them")
    return plan
