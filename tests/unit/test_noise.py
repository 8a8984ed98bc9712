"""The noise proxy: fan source when any fan reads, else the power-thermal model; dBA only if calibrated."""

from agent.collectors.noise import NoiseConfig, NoiseModel
from agent.protocol import Noise


def gpu(**kw):
    base = {"index": 0, "status": "ok", "power_w": None, "power_limit_w": None, "temperature_c": None, "temperature_slowdown_c": None, "fan_percent": None}
    return {**base, **kw}


def host(temps=(), fans=()):
    return {"temperatures": list(temps), "fans": list(fans)}


def compute(gpus, h, **cfg):
    out = NoiseModel(NoiseConfig(**cfg)).compute(gpus, h)
    Noise.model_validate(out)
    return out


def test_gb10_idle_is_quiet_and_full_load_is_loud():
    idle = compute([gpu(power_w=4.0, temperature_c=37.0)], host())
    busy = compute([gpu(power_w=140.0, temperature_c=95.0)], host())
    assert idle["source"] == busy["source"] == "power-thermal"
    assert idle["index"] < 5
    assert busy["index"] == 100.0
    assert idle["inputs"]["power_reference_w"] == 140.0  # GB10 has no power limit in NVML
    assert idle["dba_estimate"] is None  # never invented


def test_power_limit_and_slowdown_threshold_used_when_known():
    out = compute([gpu(power_w=350.0, power_limit_w=700.0, temperature_c=61.0, temperature_slowdown_c=87.0)], host())
    assert out["inputs"]["power_ratio"] == 0.5
    assert out["inputs"]["throttle_c"] == 87.0
    assert out["inputs"]["temp_ratio"] == 0.5
    assert out["index"] == 50.0


def test_hottest_sensor_drives_temperature_but_nvme_is_ignored():
    out = compute(
        [gpu(power_w=0.0, temperature_c=40.0)],
        host(temps=[{"chip": "acpitz", "label": "temp1", "current_c": 65.0}, {"chip": "nvme", "label": "Composite", "current_c": 80.0}]),
    )
    assert out["inputs"]["hottest_sensor"] == "acpitz/temp1"
    assert out["inputs"]["hottest_c"] == 65.0


def test_any_fan_reading_switches_to_fan_source():
    fans = [
        {"chip": "nct", "label": "CPU_FAN", "rpm": 1500.0, "duty_percent": None, "max_rpm": 3000.0},
        {"chip": "nct", "label": "SYS", "rpm": None, "duty_percent": 30.0},
    ]
    out = compute([gpu(power_w=600.0, temperature_c=90.0, fan_percent=20.0)], host(fans=fans))
    assert out["source"] == "fan"
    assert out["inputs"]["fans_percent"] == {"gpu0": 20.0, "nct/CPU_FAN": 50.0, "nct/SYS": 30.0}
    assert out["index"] == 50.0 and out["inputs"]["loudest"] == "nct/CPU_FAN"


def test_rpm_without_max_uses_configured_reference():
    out = compute([], host(fans=[{"chip": "x", "label": "f", "rpm": 2500.0, "duty_percent": None, "max_rpm": None}]), fan_max_rpm=5000.0)
    assert out["index"] == 50.0


def test_calibrated_dba_is_linear_between_idle_and_load():
    out = compute([gpu(power_w=70.0, temperature_c=65.0)], host(), idle_dba=20.0, load_dba=40.0)
    assert out["index"] == 50.0
    assert out["dba_estimate"] == 30.0


def test_nothing_to_go_on_gives_null_index():
    out = compute([], host())
    assert out == {"index": None, "source": "none", "inputs": {}, "dba_estimate": None}


def test_gpu_in_error_is_not_an_input():
    out = compute([{"index": 0, "status": "error", "error": "GPU is lost"}], host(temps=[{"chip": "acpitz", "label": "t", "current_c": 35.0}]))
    assert "gpu_power_w" not in out["inputs"] and out["index"] == 0.0
