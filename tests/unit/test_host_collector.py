"""Host collector: /proc/meminfo arithmetic and a hwmon tree laid out like the kernel's."""

from __future__ import annotations

from pathlib import Path

from agent.collectors.host import HostCollector, host_info, read_hwmon, read_meminfo
from agent.protocol import HostInfo, HostTelemetry


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def spark_like_sys(root: Path) -> Path:
    """acpitz + nvme + mlx5 (the Spark's chips), plus a board with a fan and a power sensor."""
    hw = root / "class" / "hwmon"
    write(hw / "hwmon0" / "name", "acpitz")
    write(hw / "hwmon0" / "temp1_input", "41500")
    write(hw / "hwmon0" / "temp1_crit", "105000")
    write(hw / "hwmon1" / "name", "nvme")
    write(hw / "hwmon1" / "temp1_input", "38850")
    write(hw / "hwmon1" / "temp1_label", "Composite")
    write(hw / "hwmon2" / "name", "nct6798")
    write(hw / "hwmon2" / "fan2_input", "1200")
    write(hw / "hwmon2" / "fan2_max", "3000")
    write(hw / "hwmon2" / "pwm2", "128")
    write(hw / "hwmon2" / "fan2_label", "CPU_FAN")
    write(hw / "hwmon3" / "name", "spbm")
    write(hw / "hwmon3" / "power1_input", "36250000")
    write(hw / "hwmon3" / "power1_label", "sys_total")
    write(hw / "hwmon3" / "power2_average", "12000000")
    return root


def test_meminfo_used_is_total_minus_available(tmp_path):
    write(tmp_path / "meminfo", "MemTotal:       131072000 kB\nMemFree:          2000000 kB\nBuffers: 1 kB\nMemAvailable:   100000000 kB")
    assert read_meminfo(str(tmp_path)) == (131072000 * 1024, 100000000 * 1024)
    assert read_meminfo(str(tmp_path / "missing")) is None


def test_hwmon_temps_fans_power(tmp_path):
    s = read_hwmon(str(spark_like_sys(tmp_path)))
    assert {"chip": "acpitz", "label": "temp1", "current_c": 41.5, "high_c": None, "critical_c": 105.0} in s["temperatures"]
    assert any(t["chip"] == "nvme" and t["label"] == "Composite" and t["current_c"] == 38.85 for t in s["temperatures"])
    assert s["fans"] == [{"chip": "nct6798", "label": "CPU_FAN", "rpm": 1200.0, "duty_percent": 50.2, "max_rpm": 3000.0}]
    assert {"chip": "spbm", "label": "sys_total", "power_w": 36.25} in s["power"]
    assert {"chip": "spbm", "label": "power2", "power_w": 12.0} in s["power"]


def test_no_hwmon_temps_falls_back_to_thermal_zones(tmp_path):
    write(tmp_path / "class" / "thermal" / "thermal_zone0" / "temp", "47000")
    write(tmp_path / "class" / "thermal" / "thermal_zone0" / "type", "cpu-thermal")
    s = read_hwmon(str(tmp_path))
    assert s["temperatures"] == [{"chip": "thermal", "label": "cpu-thermal", "current_c": 47.0}]
    assert s["fans"] == [] and s["power"] == []


def test_collect_matches_schema_and_rates_start_null(tmp_path):
    sysroot = spark_like_sys(tmp_path / "sys")
    write(tmp_path / "proc" / "meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB")
    clock = iter([100.0, 100.0, 101.0, 101.0]).__next__  # read by the mount-table timer, then by the rates
    c = HostCollector(proc_root=str(tmp_path / "proc"), sys_root=str(sysroot), clock=clock)
    first = c.collect()
    HostTelemetry.model_validate(first)
    assert first["memory"] == {
        "total_bytes": 1024000,
        "available_bytes": 256000,
        "used_bytes": 768000,
        "percent": 75.0,
        # a meminfo without the cache fields and a /proc without PSI: unknown, not 0 (tests/integration/test_memory_picture.py)
        "free_bytes": None,
        "reclaimable_bytes": None,
        "shmem_bytes": None,
        "gpu_process_bytes": None,
        "reserve_bytes": 0,
        "models_available_bytes": 256000,
        "pressure": None,
    }
    assert first["disk_io"]["read_bytes_s"] is None and first["net"]["rx_bytes_s"] is None  # no rate from one sample
    second = c.collect()
    assert second["net"]["rx_bytes_s"] is not None and second["net"]["rx_bytes_s"] >= 0
    assert second["disk_io"]["read_bytes_s"] is None or second["disk_io"]["read_bytes_s"] >= 0
    assert second["cpu"]["count"] == len(second["cpu"]["per_core_percent"])
    assert len(second["fans"]) == 1 and len(second["power"]) == 2


def test_host_info_schema():
    info = host_info()
    HostInfo.model_validate(info)
    assert info["memory_total_bytes"] > 0 and info["hostname"]


def test_only_device_backed_nics_count(tmp_path):
    from agent.collectors.host import physical_nics

    for nic in ("enP7s7", "wlP9s9"):
        (tmp_path / "class" / "net" / nic / "device").mkdir(parents=True)
    for nic in ("docker0", "veth1a2b", "lo"):
        (tmp_path / "class" / "net" / nic).mkdir(parents=True)
    counters = {n: n for n in ("enP7s7", "wlP9s9", "docker0", "veth1a2b", "lo")}
    assert set(physical_nics(counters, str(tmp_path))) == {"enP7s7", "wlP9s9"}
    # a VM with no device-backed interface: everything but loopback
    assert set(physical_nics({"eth0": 1, "lo": 2}, str(tmp_path / "none"))) == {"eth0"}


def test_nic_answers_are_cached_per_name_and_forgotten_when_gone(tmp_path):
    from agent.collectors.host import physical_nics

    (tmp_path / "class" / "net" / "eth0" / "device").mkdir(parents=True)
    (tmp_path / "class" / "net" / "veth1").mkdir(parents=True)
    known: dict[str, bool] = {}
    assert set(physical_nics({"eth0": 1, "veth1": 2}, str(tmp_path), known)) == {"eth0"}
    assert known == {"eth0": True, "veth1": False}
    # a veth gone and a new name reusing nothing: the cache follows the live set
    (tmp_path / "class" / "net" / "eth1" / "device").mkdir(parents=True)
    assert set(physical_nics({"eth0": 1, "eth1": 3}, str(tmp_path), known)) == {"eth0", "eth1"}
    assert known == {"eth0": True, "eth1": True}


def test_mount_table_is_reread_on_a_timer_and_usage_every_tick(monkeypatch):
    import psutil

    from agent.collectors import host

    now = [1000.0]
    calls = []
    real = psutil.disk_partitions

    def counting(all=False):
        calls.append(now[0])
        return real(all=all)

    monkeypatch.setattr(psutil, "disk_partitions", counting)
    c = host.HostCollector(clock=lambda: now[0])
    first = c.collect()["disks"]
    now[0] += 5
    c.collect()
    assert calls == [1000.0]
    now[0] += host.PARTITIONS_REREAD_S
    assert [d["mount"] for d in c.collect()["disks"]] == [d["mount"] for d in first]
    assert calls == [1000.0, 1000.0 + 5 + host.PARTITIONS_REREAD_S]


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 999999 10 0 0 0 0 0 0 999999 10 0 0 0 0 0 0
enP7s7: {rx} 20 0 0 0 0 0 0 {tx} 15 0 0 0 0 0 0
veth1a2b: 5000000 20 0 0 0 0 0 0 5000000 15 0 0 0 0 0 0"""


def test_swap_and_nic_rates_come_from_one_read_each(tmp_path):
    sysroot = spark_like_sys(tmp_path / "sys")
    (sysroot / "class" / "net" / "enP7s7" / "device").mkdir(parents=True)
    (sysroot / "class" / "net" / "veth1a2b").mkdir(parents=True)
    proc = tmp_path / "proc"
    write(proc / "meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\nSwapTotal: 2000 kB\nSwapFree: 1500 kB\nHugePages_Total: 0")
    write(proc / "net" / "dev", NET_DEV.format(rx=1000, tx=4000))
    clock = iter([100.0, 100.0, 102.0, 102.0]).__next__
    c = HostCollector(proc_root=str(proc), sys_root=str(sysroot), clock=clock)
    first = c.collect()
    assert first["swap"] == {"total_bytes": 2048000, "used_bytes": 512000, "percent": 25.0}
    write(proc / "net" / "dev", NET_DEV.format(rx=5000, tx=4000))
    second = c.collect()
    HostTelemetry.model_validate(second)
    # only the device-backed NIC counts: 4000 bytes in 2 s; the veth and lo are left out
    assert second["net"] == {"rx_bytes_s": 2000.0, "tx_bytes_s": 0.0, "per_nic": {"enP7s7": {"rx_bytes_s": 2000.0, "tx_bytes_s": 0.0}}}
