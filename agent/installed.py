"""The installed service as the CLI sees it: which state dir `token`/`tls`/`doctor` use, and who owns it.

After `install-service` an admin runs `sudo sparkdeck-agent token add …` (root) or
`sudo -u sparkdeck sparkdeck-agent token add …` (the service user). Neither has the
service's state dir as its default (root's would be /root/.local/state/sparkdeck),
so when /etc/sparkdeck/agent.toml exists and the CLI runs as root or as the service
user with no --config/--state-dir (nor their environment variables), it uses the
service's config and state dir. Whatever writes there must leave the files readable
by the service user: `statefiles` gives them the state dir's owner, and `check`
refuses a state dir that the service could not read, with the fix.
"""

from __future__ import annotations

import os
import pwd
import tomllib
from pathlib import Path

from agent.settings import ConfigError

USER = "sparkdeck"
CONFIG_DIR = Path("/etc/sparkdeck")
CONFIG_FILE = CONFIG_DIR / "agent.toml"
STATE_DIR = Path("/var/lib/sparkdeck")


class InstalledError(ConfigError):
    """A one-line problem with the installed service's files, naming the file and the fix (the CLI prints it)."""


def _running_as_service_user() -> bool:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name == USER
    except KeyError:
        return False


def defaults(config: str | None, state_dir: str | None, *, config_file: Path = CONFIG_FILE) -> tuple[str | None, str | None]:
    """(config, state_dir) for a CLI run: the service's own when nothing was chosen and we are root or its user."""
    if config or state_dir or os.environ.get("SPARKDECK_CONFIG") or os.environ.get("SPARKDECK_STATE_DIR"):
        return config, state_dir
    if not (os.geteuid() == 0 or _running_as_service_user()) or not config_file.is_file():
        return config, state_dir
    try:
        chosen = tomllib.loads(config_file.read_text(encoding="utf-8")).get("state_dir")
    except PermissionError:
        raise InstalledError(f"cannot read {config_file}: permission denied; run this with sudo") from None
    except (OSError, ValueError):
        chosen = None  # load_settings reports a broken config with its own message
    return str(config_file), None if chosen else str(STATE_DIR)


def is_service_state(state_dir: Path, config: str | None) -> bool:
    return Path(state_dir) == STATE_DIR or (config is not None and Path(config) == CONFIG_FILE)


def check(state_dir: Path, config: str | None) -> None:
    """Refuse to write into the service's state dir when the service could not read the result."""
    state_dir = Path(state_dir)
    if not is_service_state(state_dir, config):
        return
    try:
        service = pwd.getpwnam(USER)
    except KeyError:
        raise InstalledError(
            f"{state_dir} belongs to the sparkdeck service, but its user {USER!r} does not exist: "
            f"run `sudo sparkdeck-agent install-service` (it creates the user), or pass --state-dir for a non-service agent"
        ) from None
    try:
        st = os.stat(state_dir)
    except FileNotFoundError:
        return  # not installed yet; statefiles creates it owned like its parent
    except PermissionError:
        raise InstalledError(f"cannot read {state_dir}: permission denied; run this with sudo, or as the service user (sudo -u {USER})") from None
    if st.st_uid != service.pw_uid:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        raise InstalledError(
            f"{state_dir} is not the service's: it is owned by {owner}, and the service runs as {USER}, so it could not read "
            f"what this writes. Fix: sudo chown -R {USER}:{USER} {state_dir}"
        )


def check_readable(path: Path) -> None:
    """An existing file this process cannot read gets a one-line error (never a silent empty list)."""
    path = Path(path)
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return
    except PermissionError:
        who = "" if os.geteuid() == 0 else f"; run this with sudo, or as the file's owner (sudo -u {USER} … for the service)"
        raise InstalledError(f"cannot read {path}: permission denied{who}") from None
    except IsADirectoryError:
        raise InstalledError(f"{path} is a directory, not a file; move it aside") from None
