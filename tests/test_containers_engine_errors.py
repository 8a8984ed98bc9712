"""A real permission-denied on the Docker socket turns into the message and the fix."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import asyncio, json, sys
from agent.containers.engine import Engine, EngineUnavailable
async def main():
    e = Engine(sys.argv[1])
    try:
        await e.ping()
        print(json.dumps({"ok": True}))
    except EngineUnavailable as exc:
        print(json.dumps({"message": exc.message, "fix": exc.fix}))
    finally:
        await e.close()
asyncio.run(main())
"""


def _drop_dac_override() -> None:
    """In the child before exec: remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_permission_denied_on_the_socket() -> None:
    d = Path(tempfile.mkdtemp(prefix="sdtest-sock-"))
    try:
        d.chmod(0o755)
        path = d / "docker.sock"
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen()
        path.chmod(0o000)  # nobody may connect; root bypasses modes, so as root the probe runs without that power
        drop = _drop_dac_override if os.geteuid() == 0 else None
        out = subprocess.run(
            [sys.executable, "-c", PROBE, f"unix://{path}"], cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=drop
        )
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        assert got["message"] == f"permission denied on the Docker socket {path}"
        assert "docker group" in got["fix"]
        srv.close()
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()
