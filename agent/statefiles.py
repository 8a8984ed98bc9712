"""Files in the state dir: 0600 (dirs 0700) whatever the umask, owned by the state dir's owner.

The agent runs as its service user, but the CLI (`token add`, `tls init`, `doctor`)
is often run as root with sudo. A file root creates there must still be readable by
the agent, so every file and directory created here takes the owner of the
directory it lives in (the state dir belongs to the service user), and its mode is
set explicitly rather than left to the umask (the agent outside the unit runs with
022). Call these instead of ``open``/``mkdir`` for anything under the state dir:

  ensure_dir(path)              a directory, 0700, owned like its parent
  open_file(path, flags)        an fd, created 0600, owned like its directory
  write_file(path, data)        atomic replace (tmp + fsync + rename), 0600, owned right
  secure_existing(path)         fix an existing file (e.g. a SQLite -wal/-shm) to 0600 + owner
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def _owner_of(directory: Path) -> tuple[int, int] | None:
    """(uid, gid) to give a new entry in ``directory``, or None when no chown is needed or possible."""
    if os.geteuid() != 0:
        return None  # only root can give a file away; others create files as themselves
    try:
        st = os.stat(directory)
    except OSError:
        return None
    if st.st_uid == 0 and st.st_gid == 0:
        return None
    return st.st_uid, st.st_gid


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700, each owned like the directory above it."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
        owner = _owner_of(d.parent)
        if owner:
            os.chown(d, *owner)
    return path


def _fix_fd(fd: int, directory: Path) -> None:
    st = os.fstat(fd)
    if stat.S_IMODE(st.st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)
    owner = _owner_of(directory)
    if owner and (st.st_uid, st.st_gid) != owner:
        os.fchown(fd, *owner)


def open_file(path: Path, flags: int) -> int:
    """os.open with O_CREAT, then 0600 and the directory's owner, also for a file that existed."""
    path = Path(path)
    ensure_dir(path.parent)
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        _fix_fd(fd, path.parent)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``: readers see the old or the new file, never half.

    File and directory are fsynced, so after a power cut the rename is there too (state files
    are written a few times per run: tokens, the run marker, an incident; the fsyncs cost nothing
    that matters)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = open_file(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def secure_existing(path: Path) -> None:
    """0600 and the directory's owner for a file something else created (SQLite's -wal/-shm)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _fix_fd(fd, path.parent)
    finally:
        os.close(fd)


# -- checking (doctor) ----------------------------------------------------------------


@dataclass
class Problem:
    path: Path
    what: str
    fix: str


def audit(state_dir: Path, owner: str | None) -> list[Problem]:
    """Entries under ``state_dir`` that are not 0600/0700 or not owned by ``owner`` (None: any owner)."""
    import pwd

    want_uid = None
    if owner is not None:
        try:
            want_uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            return [
                Problem(
                    state_dir,
                    f"{state_dir} belongs to the service user {owner}, who does not exist",
                    "sudo sparkdeck-agent install-service (it creates the user)",
                )
            ]
    problems: list[Problem] = []
    entries = [Path(state_dir)]
    for root, dirs, files in os.walk(state_dir):
        entries += [Path(root) / n for n in dirs + files]
    wrong_owner: list[Path] = []
    for p in entries:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue  # a chmod would follow it out of the state dir; chown -R does not follow it
        want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        if stat.S_IMODE(st.st_mode) != want:
            problems.append(Problem(p, f"{p} is mode {stat.S_IMODE(st.st_mode):o}, want {want:o}", f"chmod {want:o} {p}"))
        if want_uid is not None and st.st_uid != want_uid:
            wrong_owner.append(p)
    if wrong_owner:
        # one chown for the lot: what an admin pastes
        try:
            now = pwd.getpwuid(os.lstat(wrong_owner[0]).st_uid).pw_name
        except KeyError:
            now = str(os.lstat(wrong_owner[0]).st_uid)
        problems.append(
            Problem(
                wrong_owner[0],
                f"{len(wrong_owner)} entr{'y' if len(wrong_owner) == 1 else 'ies'} not owned by {owner} (e.g. {wrong_owner[0]}, owned by {now})",
                f"chown -R {owner}:{owner} {state_dir}",
            )
        )
    return problems


def readable_by_others(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
