"""A local user reading the agent's state: every file 0600 (dirs 0700) whatever the umask (issue 12 item 9)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx

from tests.helpers.agent import ROOT, launch_agent


def _modes(state) -> dict[str, int]:
    return {str(p.relative_to(state)) or ".": stat.S_IMODE(p.lstat().st_mode) for p in [state, *state.rglob("*")]}


def test_umask_000_and_0644_leftovers_leave_nothing_readable_by_others(tmp_path, record):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    old = os.umask(0o000)  # the worst an agent outside the unit can inherit
    try:
        for leftover in ("history.sqlite3-wal", "history.sqlite3-shm", "seq", "audit.log"):  # from an older agent, umask 022
            (state / leftover).write_bytes(b"")
            os.chmod(state / leftover, 0o644)
        tls = subprocess.run(
            [sys.executable, "-m", "agent.cli", "tls", "init", "--state-dir", str(state)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert tls.returncode == 0, tls.stderr
        agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.2")
    finally:
        os.umask(old)
    try:
        r = httpx.post(f"{agent.url}/api/v1/models/no-such-model/start", headers=agent.headers(agent.control_token), timeout=10)
        assert r.status_code in (404, 503), r.text  # a control action: audit.log is written
        time.sleep(1.0)  # samples: history.sqlite3 and its WAL/SHM, the seq file
        got = _modes(state)
    finally:
        agent.stop()
    for name in (
        "tokens.json",
        "tokens.lock",
        "history.sqlite3",
        "history.sqlite3-wal",
        "history.sqlite3-shm",
        "seq",
        "audit.log",
        "tls/key.pem",
        "tls/cert.pem",
    ):
        assert name in got, (name, got)
    wrong = {k: f"{v:o}" for k, v in got.items() if v != (0o700 if (state / k).is_dir() else 0o600)}
    readable = [k for k, v in got.items() if v & 0o077]
    record(
        "state files",
        "agent and CLI under umask 000, with 0644 history -wal/-shm, seq and audit.log left by an older agent",
        f"{len(got)} entries: {len(got) - len(wrong)} at 0600/0700, {len(readable)} with any group/other bit",
    )
    assert wrong == {} and readable == []
