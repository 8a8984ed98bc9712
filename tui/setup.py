"""`sparkdeck setup [user@]host[:port]`: install the agent as a service on a machine and add it, from the laptop.

Everything goes through the user's own OpenSSH with the ssh:// transport's options
(tui/ssh.py: BatchMode, so ssh itself never prompts, except where the user agreed to
install their public key). Steps:

1. reach: ``ssh … true``; on "Permission denied" offer once to install the public key
   (ssh asks for the password itself, once; sparkdeck never sees or stores it) and a
   ``Host`` alias in ~/.ssh/sparkdeck.conf, included from ~/.ssh/config.
2. check: one read-only script (tui/setup_remote.py) -> plain-word findings; any failure
   stops here, before anything is changed.
3. install: the wheel goes into a mktemp dir of the SSH user; then one ``ssh -t … sudo sh -c``
   session (sudo asks at most once, in this terminal) installs it into /opt/sparkdeck,
   runs install-service and makes this laptop's token, which a BatchMode ssh reads back
   from a 0600 file; the temp dir is removed in every case.
4. add: the hosts.toml entry (ssh:// URL and token), checked through the ssh:// transport.

A second run changes nothing that works: no sudo when the installed wheel is as new and
the service is active, and a hosts entry whose token works is left alone.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tui import setup_remote as remote
from tui.ssh import SshError, SshTarget, explain, parse_ssh_url, ssh_binary

PIP_ARGS_ENV = "SPARKDECK_SETUP_PIP_ARGS"


class SetupError(Exception):
    """One line, with the fix; setup exits 1."""


@dataclass
class Options:
    destination: str
    name: str | None = None
    yes: bool = False
    dry_run: bool = False
    wheel: Path | None = None
    scope: str = "control"
    pip_args: str = ""


def parse_destination(text: str) -> SshTarget:
    """[user@]host[:port] (or an ssh:// URL) -> SshTarget, with the transport's checks against option injection."""
    url = text if text.startswith("ssh://") else "ssh://" + text
    try:
        return parse_ssh_url(url)
    except SshError as exc:
        raise SetupError(str(exc).replace("ssh://", "", 1) if not text.startswith("ssh://") else str(exc)) from None


def ssh_url(target: SshTarget, agent_port: int) -> str:
    port = f":{target.port}" if target.port else ""
    query = f"?agent_port={agent_port}" if agent_port != remote.DEFAULT_AGENT_PORT else ""
    return f"ssh://{target.destination}{port}{query}"


# -- the wheel ------------------------------------------------------------------------


def wheel_version(path: Path) -> str:
    parts = path.name.split("-")
    if len(parts) < 3 or parts[0] != "sparkdeck" or not path.name.endswith(".whl"):
        raise SetupError(f"{path}: not a sparkdeck wheel (expected sparkdeck-VERSION-py3-none-any.whl)")
    return parts[1]


def wheel_content_hash(path: Path) -> str:
    """A hash of the files in the wheel, not of the zip: rebuilding the same tree gives the same hash."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            if name.endswith(".dist-info/RECORD"):
                continue
            h.update(name.encode() + b"\0" + z.read(name) + b"\0")
    return h.hexdigest()


def build_wheel(dest: Path) -> Path:
    """sparkdeck's own wheel from this installation: `pip wheel --no-deps` of its source tree, or a repack of the installed files."""
    import agent

    src = Path(agent.__file__).resolve().parents[1]
    if (src / "pyproject.toml").is_file():
        with tempfile.TemporaryDirectory() as build:  # setuptools writes build/ next to the source: build a copy
            copy = Path(build) / "src"
            shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".state", ".pytest_cache", "__pycache__", "tests"))
            cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", str(copy), "-w", str(dest)]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=build)
            if r.returncode != 0:  # offline: the build backend this environment already has, if it is new enough
                r = subprocess.run([*cmd[:-3], "--no-build-isolation", *cmd[-3:]], capture_output=True, text=True, cwd=build)
            if r.returncode != 0:
                raise SetupError(f"could not build sparkdeck's wheel from {src}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}; pass --wheel FILE")
        found = sorted(dest.glob("sparkdeck-*.whl"))
        if not found:
            raise SetupError(f"pip wheel built no sparkdeck wheel from {src}; pass --wheel FILE")
        return found[-1]
    return repack_installed(dest)


def repack_installed(dest: Path) -> Path:
    """The installed (non-editable) distribution zipped back into a wheel: it is pure Python."""
    import base64
    from importlib import metadata

    dist = metadata.distribution("sparkdeck")
    version = dist.version
    files = [f for f in dist.files or [] if not f.name.endswith((".pyc", "RECORD", "INSTALLER", "REQUESTED", "direct_url.json")) and ".." not in f.parts]
    if not any(str(f).startswith("agent/") for f in files):
        raise SetupError("this sparkdeck is installed without its files (editable, source moved?): pass --wheel FILE")
    out = dest / f"sparkdeck-{version}-py3-none-any.whl"
    info = f"sparkdeck-{version}.dist-info"
    record = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            data = Path(f.locate()).read_bytes()
            name = str(f).replace("\\", "/")
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return out


def is_newer(local_version: str, local_hash: str, facts: remote.Facts) -> bool:
    """Install when nothing is there, the wheel's version is higher, or the same version has other contents (a dev build)."""
    if not facts.installed:
        return True
    mine, theirs = remote.version_tuple(local_version), remote.version_tuple(facts.installed)
    if mine is None or theirs is None:
        return local_version != facts.installed
    if mine != theirs:
        return mine > theirs
    return local_hash != facts.installed_sha256


# -- ssh ------------------------------------------------------------------------------


class Remote:
    """Commands on the machine through the user's OpenSSH; every one is echoed under --dry-run."""

    def __init__(self, target: SshTarget, out: TextIO, dry_run: bool) -> None:
        self.target, self.out, self.dry_run = target, out, dry_run

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        return [ssh_binary(), *(["-t"] if tty else ["-T"]), *self.target.base_args(), "--", self.target.destination, command]

    def show(self, argv: list[str], stdin_note: str = "") -> None:
        print("  $ " + shlex.join(argv) + stdin_note, file=self.out, flush=True)

    def run(self, command: str, *, input: str | bytes | None = None, timeout: float = 60, read_only: bool = False) -> subprocess.CompletedProcess:
        """BatchMode ssh with captured output; under --dry-run only read-only commands really run."""
        argv = self.argv(command)
        if self.dry_run:
            self.show(argv, "  < (stdin)" if input is not None else "")
            if not read_only:
                return subprocess.CompletedProcess(argv, 0, "", "")
        try:
            r = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                timeout=timeout,
                text=not isinstance(input, bytes),
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise SetupError(f"ssh {self.target.destination} timed out after {timeout:.0f} s") from None
        if r.returncode == 255:
            raise SetupError(explain(r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace"), self.target))
        return r

    def interactive(self, command: str, *, tty: bool) -> int:
        """The sudo session: the terminal is the user's (a sudo password prompt reads from it)."""
        argv = self.argv(command, tty=tty)
        if self.dry_run:
            self.show(argv)
            return 0
        return subprocess.run(argv).returncode


def _public_key() -> Path | None:
    ssh_dir = Path.home() / ".ssh"
    for name in ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"):
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    return None


def install_key(target: SshTarget, key: Path, out: TextIO) -> None:
    """Append the public key to the remote authorized_keys, as ssh-copy-id does: ssh asks for the password, once."""
    line = key.read_text().strip()
    if not line or "\n" in line or "'" in line:
        raise SetupError(f"{key}: not a one-line public key")
    script = (
        "umask 077; mkdir -p ~/.ssh && touch ~/.ssh/authorized_keys && "
        f"(grep -qxF {shlex.quote(line)} ~/.ssh/authorized_keys || printf '%s\\n' {shlex.quote(line)} >> ~/.ssh/authorized_keys)"
    )
    args = [a for a in target.base_args()]
    args[args.index("BatchMode=yes")] = "BatchMode=no"
    argv = [
        ssh_binary(),
        "-T",
        *args,
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "PreferredAuthentications=keyboard-interactive,password",
        "--",
        target.destination,
        script,
    ]
    print(f"  $ {shlex.join(argv[:3])} … {target.destination} (appends {key.name} to ~/.ssh/authorized_keys)", file=out, flush=True)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SetupError(f"installing {key.name} on {target.host} failed: {explain(r.stderr, target)}")


def add_host_alias(alias: str, target: SshTarget, out: TextIO) -> Path:
    """`Host alias` in ~/.ssh/sparkdeck.conf, with `Include sparkdeck.conf` put first in ~/.ssh/config (an Include after a Host block would land in it)."""
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    conf = ssh_dir / "sparkdeck.conf"
    existing = conf.read_text() if conf.exists() else ""
    if any(line.split()[1:] == [alias] for line in existing.splitlines() if line.lower().startswith("host ")):
        print(f"  Host {alias} is already in {conf}", file=out)
        return conf
    block = (
        f"Host {alias}\n    HostName {target.host}\n"
        + (f"    User {target.user}\n" if target.user else "")
        + (f"    Port {target.port}\n" if target.port else "")
    )
    conf.write_text(existing + ("\n" if existing and not existing.endswith("\n\n") else "") + block)
    os.chmod(conf, 0o600)
    main = ssh_dir / "config"
    text = main.read_text() if main.exists() else ""
    if "include sparkdeck.conf" not in text.lower():
        main.write_text("Include sparkdeck.conf\n" + text)
        os.chmod(main, 0o600)
    print(f"  added `Host {alias}` to {conf} (included from {main}): `ssh {alias}` now works", file=out)
    return conf


# -- the run --------------------------------------------------------------------------


def _ask(question: str, yes: bool, out: TextIO) -> bool:
    if yes:
        print(f"{question} [y/N] yes (--yes)", file=out)
        return True
    if not sys.stdin.isatty():
        print(f"{question} [y/N] no (not a terminal; --yes answers yes)", file=out)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def reach(r: Remote, opts: Options, name: str, out: TextIO) -> None:
    argv = r.argv("true")
    if opts.dry_run:
        r.show(argv)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if p.returncode == 0:
        return
    if "Permission denied" not in p.stderr:
        raise SetupError(explain(p.stderr, r.target))
    key = _public_key()
    if key is None:
        raise SetupError(f"SSH key authentication to {r.target.destination} failed and you have no key: run `ssh-keygen -t ed25519`, then setup again")
    if opts.dry_run:
        raise SetupError(f"SSH key authentication to {r.target.destination} failed; without --dry-run setup offers to install {key}")
    if not _ask(f"Key authentication to {r.target.destination} failed. Install your public key {key} there (ssh asks for the password once)?", opts.yes, out):
        raise SetupError(explain(p.stderr, r.target))
    install_key(r.target, key, out)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SetupError(f"the key is installed but key authentication still fails: {explain(p.stderr, r.target)}")
    if name != r.target.host and _ask(f"Add `Host {name}` to ~/.ssh/sparkdeck.conf so that `ssh {name}` reaches {r.target.destination}?", opts.yes, out):
        add_host_alias(name, r.target, out)


def check(r: Remote, out: TextIO) -> remote.Facts:
    p = r.run("sh -s", input=remote.CHECK_SCRIPT, read_only=True, timeout=60)
    try:
        facts = remote.parse_facts(p.stdout)
    except remote.CheckOutputError as exc:
        raise SetupError(f"{r.target.host}: {exc}") from None
    if not facts.complete:
        raise SetupError(f"{r.target.host}: the remote check stopped early: {(p.stderr.strip().splitlines() or ['no message'])[-1]}")
    return facts


def report(findings: list[remote.Finding], out: TextIO) -> None:
    marks = {"ok": "ok  ", "note": "note", "fail": "FAIL"}
    for f in findings:
        print(f"  {marks[f.level]}  {f.what:<9} {f.text}", file=out)


def _entry_works(url: str, token: str | None) -> bool:
    """The hosts entry answers an authenticated request through the ssh:// transport."""
    from tui.client import Target, TargetError, rest_call
    from tui.transport import prepare

    if not token:
        return False
    try:
        prepared = prepare(Target(name="setup", url=url, token=token))
    except TargetError:
        return False
    try:
        rest_call(prepared.target.url, token, "GET", "/api/v1/snapshot", context=prepared.target.ssl)
        return True
    except Exception:  # 401 after a revoke, an agent that went away: the entry does not work
        return False
    finally:
        prepared.close()


def run(opts: Options, out: TextIO = sys.stdout, *, interactive_tty: Callable[[], bool] = lambda: sys.stdin.isatty()) -> int:
    from tui.config import HostEntry, load_hosts, save_hosts

    target = parse_destination(opts.destination)
    name = opts.name or target.host
    if "://" in name or not name.strip():
        raise SetupError("--name must be a plain name, not a URL")
    r = Remote(target, out, opts.dry_run)
    print(f"== reaching {target.destination}{':' + str(target.port) if target.port else ''} over SSH", file=out, flush=True)
    reach(r, opts, name, out)
    print(f"== checking {target.host}", file=out, flush=True)
    facts = check(r, out)
    findings = remote.assess(facts, target.host)
    report(findings, out)
    failed = [f for f in findings if f.level == "fail"]
    if failed:
        raise SetupError(f"{len(failed)} check(s) failed on {target.host} (above); nothing was changed")
    port = remote.agent_port(facts)
    if port is None:
        raise SetupError(
            f"no free port from {remote.DEFAULT_AGENT_PORT} to {remote.DEFAULT_AGENT_PORT + 39} on {target.host}'s loopback; free one, then run setup again"
        )
    url = ssh_url(target, port)

    with tempfile.TemporaryDirectory(prefix="sparkdeck-setup-") as build:
        wheel = opts.wheel or build_wheel(Path(build))
        if not wheel.is_file():
            raise SetupError(f"{wheel}: no such file")
        version, content = wheel_version(wheel), wheel_content_hash(wheel)
        upgrade = is_newer(version, content, facts)
        hosts = load_hosts()
        entry = hosts.get(name)
        entry_ok = entry is not None and not opts.dry_run and _entry_works(entry.url, entry.resolve_token())
        if not upgrade and facts.service == "active" and entry_ok:
            print(f"== nothing to do: sparkdeck {facts.installed} is installed and active on {target.host}, and hosts entry {name!r} works", file=out)
            return 0
        if facts.installed and not upgrade:
            print(f"== sparkdeck {facts.installed} on {target.host} is as new as {wheel.name}: kept", file=out)
        elif facts.installed:
            print(f"== upgrading sparkdeck {facts.installed} on {target.host} to {version} ({wheel.name}); config, tokens and history are kept", file=out)
        if facts.sudo == "password" and not interactive_tty() and not opts.dry_run:
            raise SetupError(
                f"sudo on {target.host} asks for a password and this is not a terminal: run setup in a terminal (or allow {facts.user} sudo without a password)"
            )
        scope = "" if entry_ok else opts.scope
        token = _install(r, opts, facts, wheel, content, upgrade, scope, name, tty=interactive_tty(), out=out)
    if entry_ok:
        print(f"== hosts entry {name!r} works: kept", file=out)
    elif not opts.dry_run:
        assert token is not None
        hosts[name] = HostEntry(name, url, token)
        path = save_hosts(hosts)
        print(f"== saved {name} -> {url} in {path} ({opts.scope} token)", file=out)
        if not _entry_works(url, token):
            raise SetupError(f"{name} was saved, but the agent does not answer through {url}; try `sparkdeck status {name}`")
    if opts.dry_run:
        print(f"== dry run: nothing was changed on {target.host} or in the hosts file", file=out)
        return 0
    print(f"done: `sparkdeck {name}` opens the dashboard, `sparkdeck status {name}` prints a summary", file=out)
    return 0


def _install(
    r: Remote, opts: Options, facts: remote.Facts, wheel: Path, content: str, upgrade: bool, scope: str, name: str, *, tty: bool, out: TextIO
) -> str | None:
    token_name = f"sparkdeck-{socket.gethostname().split('.')[0]}"[:64]
    print(f"== installing on {r.target.host} (sudo{' may ask for your password' if facts.sudo == 'password' else ''})", file=out, flush=True)
    tmp = r.run('mktemp -d "${TMPDIR:-/tmp}/sparkdeck-setup.XXXXXX"', timeout=30).stdout.strip() or "/tmp/sparkdeck-setup.DRYRUN"
    if not tmp.startswith("/") or any(c.isspace() for c in tmp):
        raise SetupError(f"mktemp on {r.target.host} printed {tmp!r}")
    try:
        remote_wheel = f"{tmp}/{wheel.name}"
        if upgrade:
            p = r.run(f"cat > {shlex.quote(remote_wheel)}", input=wheel.read_bytes(), timeout=300)
            if p.returncode != 0:
                raise SetupError(f"copying {wheel.name} to {r.target.host} failed: {p.stderr.decode(errors='replace').strip()[-300:]}")
        pip_args = opts.pip_args or os.environ.get(PIP_ARGS_ENV, "")
        args = [remote_wheel, tmp, "" if facts.agent_port else str(remote.agent_port(facts)), scope, token_name, pip_args, "1" if upgrade else "0", content]
        command = "sudo sh -c " + shlex.quote(remote.INSTALL_SCRIPT) + " sh " + " ".join(shlex.quote(a) for a in args)
        if opts.dry_run:
            r.show(r.argv('sudo sh -c "$INSTALL_SCRIPT" sh ' + shlex.join(args), tty=tty))
            print("  INSTALL_SCRIPT (the one sudo session):\n" + "\n".join("  | " + line for line in remote.INSTALL_SCRIPT.strip("\n").splitlines()), file=out)
            return None
        if r.interactive(command, tty=tty) != 0:
            raise SetupError(f"the install on {r.target.host} failed (above); what this run created there was removed")
        if not scope:
            return None
        p = r.run(f"cat {shlex.quote(tmp + '/token')}", timeout=30)
        token = p.stdout.strip().splitlines()[-1:] if p.returncode == 0 else []
        if not token or not token[0].startswith("sdk_"):
            raise SetupError(f"the token made on {r.target.host} could not be read back: {p.stderr.strip()[-200:]}")
        return token[0]
    finally:
        try:
            r.run(f"rm -rf {shlex.quote(tmp)}", timeout=30)
        except SetupError as exc:  # keep the first error; say what is left behind
            print(f"  could not remove {tmp} on {r.target.host}: {exc}", file=out)
