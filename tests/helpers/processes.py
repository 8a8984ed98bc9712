"""GPU processes for the fake NVML: real host processes named as the GPU's compute processes."""

from __future__ import annotations

DEAF_TO_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


NO_CONTAINERS = {"SPARKDECK_CONTAINERS": "false"}


def gpu_env(*pids: int, used: int = 3 * 1024**3) -> dict[str, str]:
    return {"SPARKDECK_SIMULATE_PROCESSES": ",".join(f"{p}:{used}" for p in pids)}
