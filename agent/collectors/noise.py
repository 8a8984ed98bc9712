"""The noise proxy: how loud is the machine likely to be, 0 (silent) to 100.

The DGX Spark exposes no fan sensor, yet silence is why people buy it. So:
  * with any fan reading (NVML fan %, hwmon pwm duty, or hwmon RPM against its
    max), the index is the busiest fan's duty: ``source = "fan"``;
  * otherwise a power-thermal model (``source = "power-thermal"``): fans on such
    boxes answer to heat, and heat follows power, so
        power_ratio = GPU power / reference (power limit, or the configured
                      reference where NVML has none, e.g. GB10)
        temp_ratio  = (hottest - idle_c) / (throttle - idle_c), clamped 0..1
        index       = 100 * (w_power * power_ratio + w_temp * temp_ratio)
    with whichever inputs exist (weights renormalised); none at all -> null.
``dba_estimate`` is given only when the user calibrated idle and full-load dBA
(measured with a meter or phone app): a linear map of the index between them.
It is never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class NoiseConfig:
    idle_dba: float | None = None
    load_dba: float | None = None
    power_reference_w: float = 140.0
    idle_c: float = 35.0
    throttle_c: float = 95.0
    fan_max_rpm: float = 5000.0
    w_power: float = 0.5
    w_temp: float = 0.5
    ignore_sensors: list[str] = field(default_factory=lambda: ["nvme", "mlx5", "drivetemp"])


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


class NoiseModel:
    def __init__(self, config: NoiseConfig | None = None):
        self.c = config or NoiseConfig()

    def _dba(self, index: float | None) -> float | None:
        if index is None or self.c.idle_dba is None or self.c.load_dba is None:
            return None
        return round(self.c.idle_dba + (self.c.load_dba - self.c.idle_dba) * index / 100, 1)

    def compute(self, gpus: list[dict[str, Any]], host: dict[str, Any]) -> dict[str, Any]:
        fans = self._fans(gpus, host)
        if fans:
            name, pct = max(fans.items(), key=lambda kv: kv[1])
            index = round(_clamp(pct / 100) * 100, 1)
            return {"index": index, "source": "fan", "inputs": {"fans_percent": fans, "loudest": name}, "dba_estimate": self._dba(index)}
        return self._power_thermal(gpus, host)

    def _fans(self, gpus: list[dict[str, Any]], host: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in gpus:
            if g.get("fan_percent") is not None:
                out[f"gpu{g['index']}"] = float(g["fan_percent"])
        for f in host.get("fans", []):
            key = f"{f['chip']}/{f['label']}"
            if f.get("duty_percent") is not None:
                out[key] = float(f["duty_percent"])
            elif f.get("rpm") is not None:
                out[key] = round(100 * f["rpm"] / (f.get("max_rpm") or self.c.fan_max_rpm), 1)
        return out

    def _power_thermal(self, gpus: list[dict[str, Any]], host: dict[str, Any]) -> dict[str, Any]:
        c = self.c
        ok = [g for g in gpus if g.get("status") == "ok"]
        power = [g["power_w"] for g in ok if g.get("power_w") is not None]
        refs = [g.get("power_limit_w") or c.power_reference_w for g in ok if g.get("power_w") is not None]
        temps: list[tuple[str, float]] = [(f"gpu{g['index']}", g["temperature_c"]) for g in ok if g.get("temperature_c") is not None]
        temps += [
            (f"{t['chip']}/{t['label']}", t["current_c"]) for t in host.get("temperatures", []) if not any(t["chip"].startswith(p) for p in c.ignore_sensors)
        ]
        slowdowns = [g["temperature_slowdown_c"] for g in ok if g.get("temperature_slowdown_c")]
        throttle = min(slowdowns) if slowdowns else c.throttle_c
        inputs: dict[str, Any] = {}
        parts: list[tuple[float, float]] = []
        if power:
            ratio = _clamp(sum(power) / sum(refs))
            inputs.update(gpu_power_w=round(sum(power), 2), power_reference_w=round(sum(refs), 2), power_ratio=round(ratio, 3))
            parts.append((c.w_power, ratio))
        if temps:
            sensor, hottest = max(temps, key=lambda kv: kv[1])
            span = max(throttle - c.idle_c, 1.0)
            ratio = _clamp((hottest - c.idle_c) / span)
            inputs.update(hottest_c=hottest, hottest_sensor=sensor, throttle_c=throttle, idle_c=c.idle_c, temp_ratio=round(ratio, 3))
            parts.append((c.w_temp, ratio))
        if not parts:
            return {"index": None, "source": "none", "inputs": {}, "dba_estimate": None}
        weight = sum(w for w, _ in parts) or 1.0
        index = round(100 * sum(w * r for w, r in parts) / weight, 1)
        inputs["weights"] = {"power": c.w_power, "temp": c.w_temp}
        return {"index": index, "source": "power-thermal", "inputs": inputs, "dba_estimate": self._dba(index)}
