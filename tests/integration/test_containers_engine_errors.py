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

ROOT = Path(__file__).resolve().parents[2]

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
        out = subprocess.run([sys.executable, "-c", PROBE, f"unix://{path}"], cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=drop)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        assert got["message"] == f"permission denied on the Docker socket {path}"
        assert "docker group" in got["fix"]
        srv.close()
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


async def _socket_server(tmp_path: Path, answer: bytes | None):
    """A real unix-socket server: reads the request, sends ``answer`` (or nothing), then closes."""
    import asyncio

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        if answer:
            writer.write(answer)
            await writer.drain()
        writer.close()

    path = tmp_path / "engine.sock"
    return await asyncio.start_unix_server(handle, str(path)), f"unix://{path}"


async def test_an_engine_that_hangs_up_without_answering_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    import asyncio

    from agent.containers.engine import Engine, EngineUnavailable

    server, url = await _socket_server(tmp_path, None)
    async with server:
        try:
            await asyncio.wait_for(Engine(url).call("GET", "version"), 5)
        except EngineUnavailable as exc:
            assert "closed the connection" in exc.message and exc.fix
        else:
            raise AssertionError("a silent hang-up was taken for an answer")


async def test_an_error_answer_carries_the_engines_message(tmp_path: Path) -> None:
    from agent.containers.engine import Engine, EngineError

    body = b'{"message":"No such container: nope"}'
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server, url = await _socket_server(tmp_path, answer)
    async with server:
        try:
            await Engine(url).call("GET", "containers/nope/json")
        except EngineError as exc:
            assert (exc.status, exc.message) == (404, "No such container: nope")
        else:
            raise AssertionError("a 404 was taken for an answer")
