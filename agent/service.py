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

from agent.settings import DEFAULT_PORT, is_loopback

USER = "sparkdeck"
UNIT_NAME = "sparkdeck-agent.service"
UNIT_DIR = Path("/etc/systemd/system")
CONFIG_DIR = Path("/etc/sparkdeck")
STATE_DIR = Path("/var/lib/sparkdeck")
TEMPLATE_EXEC = "/opt/sparkdeck/bin/sparkdeck-agent"


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


def render_unit(exe: Path, *, bind: str, docker_group: bool) -> str:
    text = resources.files("agent").joinpath("sparkdeck-agent.service").read_text()
    text = text.replace(TEMPLATE_EXEC, str(exe))
    if not docker_group:
        text = text.replace("SupplementaryGroups=docker\n", "# SupplementaryGroups=docker   (no docker group on this machine when installed)\n")
    if not is_loopback(bind):
        text = text.replace("IPAddressAllow=localhost\n", "IPAddressAllow=any\n")
    return text


def render_config(bind: str, port: int) -> str:
    return (
        "# sparkdeck agent configuration; see `sparkdeck-agent serve --help` and the README.\n"
        f'host = "{bind}"\n'
        f"port = {port}\n"
        "interval_s = 1.0\n"
        + (
            ""
            if is_loopback(bind)
            else "# A non-loopback bind needs TLS: run `sparkdeck-agent tls init` and set tls = true.\ntls = true\n"
        )
    )


def install(*, bind: str = "127.0.0.1", port: int = DEFAULT_PORT, dry_run: bool = False, root: Path = Path("/"), exe: Path | None = None) -> Plan:
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
    if config.exists():
        plan.say(f"unchanged  {CONFIG_DIR / 'agent.toml'} (kept: it is yours)")
    else:
        plan.write(CONFIG_DIR / "agent.toml", render_config(bind, port), 0o644)
    _first_token(plan)
    changed = plan.write(UNIT_DIR / UNIT_NAME, render_unit(exe, bind=bind, docker_group=_group_exists("docker")), 0o644)
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
