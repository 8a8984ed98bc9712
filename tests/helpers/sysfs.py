"""A fake sysfs tree (thermal zones with trip points, hwmon) for sysfs_root."""

from __future__ import annotations

from pathlib import Path


def fake_sysfs(root: Path, temp_mc: int = 71500) -> Path:
    zones = {
        "thermal_zone0": ("cpu-thermal", temp_mc, [("passive", 95000), ("critical", 105000)]),
        "thermal_zone1": ("gpu-thermal", 48000, [("hot", 90000)]),
        "thermal_zone10": ("soc", None, []),  # unreadable sensor: listed with temp null
    }
    for name, (kind, temp, trips) in zones.items():
        d = root / "class" / "thermal" / name
        d.mkdir(parents=True)
        (d / "type").write_text(kind + "\n")
        if temp is not None:
            (d / "temp").write_text(f"{temp}\n")
        for i, (tt, tc) in enumerate(trips):
            (d / f"trip_point_{i}_type").write_text(tt + "\n")
            (d / f"trip_point_{i}_temp").write_text(f"{tc}\n")
    return root
