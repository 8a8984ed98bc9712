"""Container identity and figures from cgroup files: real v1/v2/Podman line formats, fake sysfs trees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.containers.gpu_map import container_id_from_cgroup, gpu_memory_by_container
from agent.containers.stats import StatsReader, cgroup_files, figures, parse_cgroup_file, parse_net_dev, read_counters

CID = "8523f9550b4566e697f1050ae8fdf09254cd7ef9ef4dd5e016d24359394f6276"
OTHER = "3f9c1b0e2d4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344"

# captured from a Debian 12 host, Docker 20.10, cgroupfs driver, cgroup v1 (hybrid)
V1_CGROUPFS = f"""9:name=systemd:/docker/{CID}
8:pids:/docker/{CID}
7:blkio:/docker/{CID}
4:memory:/docker/{CID}
2:cpuacct:/docker/{CID}
1:cpu:/docker/{CID}
0::/docker/{CID}
"""
# Ubuntu 20.04, systemd driver, cgroup v1
V1_SYSTEMD = f"""12:pids:/system.slice/docker-{CID}.scope
11:cpu,cpuacct:/system.slice/docker-{CID}.scope
5:memory:/system.slice/docker-{CID}.scope
1:name=systemd:/system.slice/docker-{CID}.scope
0::/system.slice/containerd.service
"""
V2_SYSTEMD = f"0::/system.slice/docker-{CID}.scope\n"  # Ubuntu 22.04+/DGX OS, cgroup v2
V2_CGROUPFS = f"0::/docker/{CID}\n"
PODMAN_ROOTLESS = f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n"
PODMAN_CONMON = f"0::/machine.slice/libpod-conmon-{CID}.scope\n"
HOST_SESSION = "0::/user.slice/user-1000.slice/session-3.scope\n"
HOST_V1 = "12:pids:/user.slice/user-1000.slice/session-3.scope\n4:memory:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n"
KUBE_CONTAINERD = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{CID}.scope\n"
DOCKER_IN_DOCKER = f"0::/docker/{OTHER}/docker/{CID}\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        (V1_CGROUPFS, CID),
        (V1_SYSTEMD, CID),
        (V2_SYSTEMD, CID),
        (V2_CGROUPFS, CID),
        (PODMAN_ROOTLESS, CID),
        (PODMAN_CONMON, None),  # the monitor, not the container
        (HOST_SESSION, None),
        (HOST_V1, None),
        (KUBE_CONTAINERD, None),  # not a Docker/Podman container
        (DOCKER_IN_DOCKER, CID),  # innermost wins
        ("", None),
        ("garbage without colons\n", None),
        (f"0::/docker/{CID[:-1]}\n", None),  # 63 hex digits is no id
        (f"0::/docker/{CID}x\n", None),
    ],
)
def test_container_id_from_cgroup(text: str, expected: str | None) -> None:
    assert container_id_from_cgroup(text) == expected


def test_parse_cgroup_file_splits_controllers() -> None:
    ctrls = parse_cgroup_file(V1_SYSTEMD)
    assert ctrls["cpu"] == ctrls["cpuacct"] == f"/system.slice/docker-{CID}.scope"
    assert ctrls["memory"] == f"/system.slice/docker-{CID}.scope"
    assert ctrls[""] == "/system.slice/containerd.service"
    assert parse_cgroup_file(V2_SYSTEMD) == {"": f"/system.slice/docker-{CID}.scope"}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    {rx}      20    0    0    0     0          0         0     {tx}      15    0    0    0     0       0          0
"""


def _fake_proc(root: Path, pid: int, cgroup: str, rx: int, tx: int) -> None:
    _write(root / "proc" / str(pid) / "cgroup", cgroup)
    _write(root / "proc" / str(pid) / "net" / "dev", NET_DEV.format(rx=rx, tx=tx))


def test_v2_files_give_cpu_memory_and_net(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 42, V2_SYSTEMD, rx=1000, tx=500)
    cg = tmp_path / "sys/fs/cgroup/system.slice" / f"docker-{CID}.scope"
    _write(cg / "cpu.stat", "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n")
    _write(cg / "memory.current", "104857600\n")
    _write(cg / "memory.max", "max\n")
    _write(cg / "memory.stat", "anon 50000000\nfile 60000000\ninactive_file 4857600\n")
    files = cgroup_files(42, str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert files is not None and files.v2
    first = read_counters(files)
    assert first.cpu_ns == 2_000_000_000
    assert first.memory_bytes == 100 * 1024 * 1024 - 4857600  # inactive page cache is not use
    assert first.memory_limit_bytes is None  # "max" = no limit, not a made-up number
    assert (first.rx_bytes, first.tx_bytes) == (1000, 500)  # loopback left out

    _write(cg / "cpu.stat", "usage_usec 2500000\n")
    _fake_proc(tmp_path, 42, V2_SYSTEMD, rx=3000, tx=1500)
    second = read_counters(files)
    object.__setattr__(second, "t", first.t + 0.5)  # pin the clock: 0.5 s later
    figs = figures(first, second)
    assert figs["cpu_percent"] == 100.0  # 0.5 s of CPU in 0.5 s = one core
    assert figs["net_rx_bytes_s"] == 4000.0 and figs["net_tx_bytes_s"] == 2000.0


def test_v1_files_and_limit(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 7, V1_CGROUPFS, rx=10, tx=20)
    base = tmp_path / "sys/fs/cgroup"
    _write(base / "cpuacct" / "docker" / CID / "cpuacct.usage", "123456789\n")
    _write(base / "memory" / "docker" / CID / "memory.usage_in_bytes", "2000000\n")
    _write(base / "memory" / "docker" / CID / "memory.limit_in_bytes", "67108864\n")
    _write(base / "memory" / "docker" / CID / "memory.stat", "cache 100\ntotal_inactive_file 1000000\n")
    files = cgroup_files(7, str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert files is not None and not files.v2
    c = read_counters(files)
    assert (c.cpu_ns, c.memory_bytes, c.memory_limit_bytes) == (123456789, 1000000, 67108864)
    assert figures(None, c)["cpu_percent"] is None  # no rate from one reading

    _write(base / "memory" / "docker" / CID / "memory.limit_in_bytes", "9223372036854771712\n")
    assert read_counters(files).memory_limit_bytes is None


def test_stats_reader_forgets_gone_containers(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 7, V2_CGROUPFS, rx=0, tx=0)
    _write(tmp_path / "sys/fs/cgroup/docker" / CID / "cpu.stat", "usage_usec 1\n")
    _fake_proc(tmp_path, 8, V2_CGROUPFS, rx=0, tx=0)
    reader = StatsReader(str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert set(reader.read_all({CID: 7})) == {CID}
    first = reader._files[(CID, 7)]
    assert first is not None and first.cpu.fd >= 0 and first.net.fd >= 0  # kept open between ticks
    assert set(reader.read_all({CID: 8})) == {CID}  # restarted: a new init pid
    assert first.cpu.fd == first.net.fd == -1  # the old pid's files are closed
    assert reader.read_all({}) == {}
    assert reader._prev == {} and reader._files == {}
    assert reader.read_all({OTHER: 999}) == {}  # no such pid: no figures rather than an error
    assert set(reader.read_all({CID: 8})) == {CID}
    kept = reader._files[(CID, 8)]
    assert reader.close() and kept.cpu.fd == -1 and reader._files == {}


def test_parse_net_dev_skips_loopback() -> None:
    assert parse_net_dev(NET_DEV.format(rx=5, tx=6)) == (5, 6)


def test_gpu_memory_sums_per_container(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _fake_proc(tmp_path, 10, V2_SYSTEMD, 0, 0)
    _fake_proc(tmp_path, 11, V1_CGROUPFS, 0, 0)
    _fake_proc(tmp_path, 12, f"0::/docker/{OTHER}\n", 0, 0)
    _fake_proc(tmp_path, 13, HOST_SESSION, 0, 0)
    gpus: list[dict[str, Any]] = [
        {"processes": [{"pid": 10, "used_memory_bytes": 100}, {"pid": 12, "used_memory_bytes": 7}, {"pid": 13, "used_memory_bytes": 1000}]},
        {"processes": [{"pid": 11, "used_memory_bytes": 50}, {"pid": 99, "used_memory_bytes": 5}, {"pid": 10, "used_memory_bytes": None}]},
    ]
    totals, complete = gpu_memory_by_container(gpus, str(proc))
    assert complete
    assert totals == {CID: None, OTHER: 7}  # pid 10's memory on GPU 1 is unknown: no made-up sum
    gpus[1]["processes"][2]["used_memory_bytes"] = 30
    assert gpu_memory_by_container(gpus, str(proc)) == ({CID: 180, OTHER: 7}, True)  # two GPUs summed; host and vanished pids left out
    # a GPU that cannot list processes: the others still count, but absence means unknown
    assert gpu_memory_by_container([gpus[0], {"processes": None}], str(proc)) == ({CID: 100, OTHER: 7}, False)


def test_memory_limit_is_reread_every_ten_seconds_not_every_tick(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 7, V1_CGROUPFS, rx=0, tx=0)
    mem = tmp_path / "sys/fs/cgroup/memory/docker" / CID
    _write(tmp_path / "sys/fs/cgroup/cpuacct/docker" / CID / "cpuacct.usage", "1\n")
    _write(mem / "memory.usage_in_bytes", "2000000\n")
    _write(mem / "memory.limit_in_bytes", "67108864\n")
    # a v1 memory.stat has both inactive_file and total_inactive_file: the right one is taken
    _write(mem / "memory.stat", "inactive_file 5\ntotal_inactive_file 1000000\n")
    files = cgroup_files(7, str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert files is not None
    first = read_counters(files)
    assert (first.memory_bytes, first.memory_limit_bytes) == (1000000, 67108864)
    _write(mem / "memory.limit_in_bytes", "134217728\n")  # docker update --memory 128m
    assert read_counters(files, first).memory_limit_bytes == 67108864
    stale = replace(first, t=first.t - 11, limit_t=first.limit_t - 11)
    assert read_counters(files, stale).memory_limit_bytes == 134217728


def test_unreadable_or_garbled_files_give_null_not_an_error(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 7, V2_CGROUPFS, rx=0, tx=0)
    cg = tmp_path / "sys/fs/cgroup/docker" / CID
    _write(cg / "cpu.stat", "user_usec 5\n")  # no usage_usec line
    _write(cg / "memory.current", "garbage\n")
    files = cgroup_files(7, str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert files is not None
    c = read_counters(files)
    assert (c.cpu_ns, c.memory_bytes, c.memory_limit_bytes) == (None, None, None)
    assert (c.rx_bytes, c.tx_bytes) == (0, 0)


def test_net_dev_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    # a host-network container sees every interface of the host: /proc/PID/net/dev can pass 64 KiB
    _fake_proc(tmp_path, 7, V2_CGROUPFS, rx=0, tx=0)
    veths = "".join(f"veth{i:05d}: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n" for i in range(2000))
    _write(tmp_path / "proc/7/net/dev", NET_DEV.format(rx=10, tx=20) + veths)
    assert (tmp_path / "proc/7/net/dev").stat().st_size > 65536
    _write(tmp_path / "sys/fs/cgroup/docker" / CID / "cpu.stat", "usage_usec 1\n")
    files = cgroup_files(7, str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert files is not None
    c = read_counters(files)
    assert (c.rx_bytes, c.tx_bytes) == (10 + 2000, 20 + 4000)
