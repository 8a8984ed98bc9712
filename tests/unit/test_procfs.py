"""Kept-open procfs/cgroup files (agent/procfs.py KeptFile) re-read fresh content every time."""

from __future__ import annotations

import os
from pathlib import Path

from agent.procfs import KeptFile, line_value


def _rss_kib(text: bytes | None) -> int:
    return int((line_value(text, b"VmRSS:") or b"0 kB").split()[0])


def test_a_kept_procfs_file_is_regenerated_by_each_read() -> None:
    kept = KeptFile("/proc/self/status")
    try:
        before = _rss_kib(kept.read())
        fd = kept.fd
        ballast = bytearray(64 * 1024 * 1024)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
        after = _rss_kib(kept.read())
        assert kept.fd == fd  # the same open file, read again from offset 0
        assert after - before > 60 * 1024
        del ballast
    finally:
        kept.close()
    assert kept.fd == -1


def test_a_vanished_file_reads_none_and_is_reopened_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "memory.current"
    kept = KeptFile(str(path))
    assert kept.read() is None and kept.fd == -1  # not there (yet): no error
    path.write_text("100\n")
    assert kept.read() == b"100\n"
    path.write_text("250\n")  # same inode rewritten, as the kernel does
    assert kept.read() == b"250\n"
    folder = os.open(tmp_path, os.O_RDONLY)
    os.dup2(folder, kept.fd)  # now reads fail (EISDIR), as a removed cgroup's file fails with ENODEV
    os.close(folder)
    assert kept.read() is None and kept.fd == -1
    assert kept.read() == b"250\n"  # opened afresh
    kept.close()


def test_a_kept_file_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "dev"
    body = b"".join(b"veth%05d: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n" % i for i in range(4000))
    path.write_bytes(body)
    kept = KeptFile(str(path))
    assert kept.read() == body and kept.read() == body
    kept.close()
