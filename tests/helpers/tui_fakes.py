"""Fake agent clients and frames for the TUI tests that need no agent (snapshots, pilot checks): a pinned clock, GB10/H200 GPUs, containers, the catalog."""

from __future__ import annotations

import math

from tui import client as c
from tui.app import SparkdeckApp
from tui.client import AgentClient, LogLine, Target

NOW = 1_790_000_000.0  # pinned wall clock


GiB = 1024**3


SIZES = [(80, 24), (160, 48)]


def clock() -> float:
    return NOW


def gpu_gb10(t: float) -> dict:
    load = 0.5 + 0.45 * math.sin(t / 20)
    return {
        "index": 0,
        "name": "NVIDIA GB10",
        "uuid": "GPU-5a1e7c2b",
        "status": "ok",
        "error": None,
        "utilization_gpu_percent": round(load * 100),
        "utilization_memory_percent": 0.0,
        "memory": {"total_bytes": 128 * GiB, "used_bytes": int(61.5 * GiB), "unified": True, "source": "meminfo"},
        "temperature_c": round(36 + 44 * load),
        "temperature_slowdown_c": None,
        "power_w": round(4 + 91 * load, 1),
        "power_limit_w": None,
        "energy_j": 1_000_000.0,
        "sm_clock_mhz": 2184,
        "mem_clock_mhz": 4266,
        "fan_percent": None,
        "pstate": "P0",
        "throttle_reasons": [],
        "processes": [],
        "unsupported": ["power_limit_w", "fan_percent", "temperature_slowdown_c"],
        "na_reasons": {"power_limit_w": "Not Supported", "fan_percent": "Not Supported", "temperature_slowdown_c": "Not Supported"},
    }


def gpu_h200(i: int, t: float, temp: float) -> dict:
    load = 0.6 + 0.3 * math.sin(t / 15 + i)
    return {
        **gpu_gb10(t),
        "index": i,
        "name": "NVIDIA H200",
        "uuid": f"GPU-h200-{i}",
        "utilization_gpu_percent": round(load * 100),
        "memory": {"total_bytes": 141 * GiB, "used_bytes": int(141 * GiB * load), "unified": False, "source": "nvml"},
        "temperature_c": temp,
        "temperature_slowdown_c": 87.0,
        "power_w": round(70 + 610 * load, 1),
        "power_limit_w": 700.0,
        "fan_percent": None,
        "unsupported": ["fan_percent"],
        "na_reasons": {"fan_percent": "Not Supported"},
    }


def container(cid, name, image, state, status, cpu, mem, gpu_mem, ports=(), model=None, health=None) -> dict:
    return {
        "id": cid,
        "name": name,
        "image": image,
        "state": state,
        "status": status,
        "created": NOW - 7200,
        "ports": [{"host_ip": "0.0.0.0", "host_port": hp, "container_port": cp, "protocol": "tcp"} for hp, cp in ports],
        "labels": {"sparkdeck.model": model} if model else {},
        "health": health,
        "cpu_percent": cpu,
        "memory_bytes": mem,
        "memory_limit_bytes": None,
        "net_rx_bytes_s": 1200.0 if state == "running" else None,
        "net_tx_bytes_s": 800.0 if state == "running" else None,
        "gpu_memory_bytes": gpu_mem,
        "model": model,
    }


CONTAINERS = [
    container(
        "a1" * 32, "vllm-qwen", "nvcr.io/nvidia/vllm:25.09-py3", "running", "Up 2 hours (healthy)", 112.5, 6 * GiB, 52 * GiB, [(8000, 8000)], "vllm", "healthy"
    ),
    container("b2" * 32, "open-webui", "ghcr.io/open-webui/open-webui:main", "running", "Up 2 hours", 1.2, 800 * 1024**2, None, [(3000, 8080)]),
    {
        **container("c3" * 32, "trtllm-llama", "nvcr.io/nvidia/tensorrt-llm:1.0", "exited", "Exited (1) 5 minutes ago", None, None, None, (), "trtllm"),
        "exit_code": 1,
        "finished_at": NOW - 300,
    },
    container("d4" * 32, "scratch", "busybox:latest", "created", "Created", None, None, None),
]


def snapshot_frame(seq: int, host: str, gpus: list[dict], containers: list[dict] | None) -> dict:
    t = float(seq)
    cores = [round(40 + 35 * math.sin(seq / 7 + i), 1) for i in range(20)]
    return {
        "type": "snapshot",
        "v": 1,
        "seq": seq,
        "ts": NOW - 120 + seq,
        "simulated": True,
        "host": {
            "hostname": host,
            "uptime_s": 86400 * 3 + 3600,
            "cpu": {"percent": round(sum(cores) / len(cores), 1), "per_core_percent": cores, "load_1": 6.5, "load_5": 5.2, "load_15": 4.8, "count": 20},
            "memory": {
                "total_bytes": 128 * GiB,
                "available_bytes": int(66.5 * GiB),
                "used_bytes": int(61.5 * GiB),
                "percent": 48.0,
                "free_bytes": int(20.5 * GiB),
                "reclaimable_bytes": 46 * GiB,
                "shmem_bytes": 2 * GiB,
                "gpu_process_bytes": 52 * GiB if any(g["memory"]["unified"] for g in gpus) else None,
                "reserve_bytes": 8 * GiB,
                "models_available_bytes": int(58.5 * GiB),
                "pressure": {"some_avg10": 1.2, "full_avg10": 0.0},
            },
            "swap": {"total_bytes": 16 * GiB, "used_bytes": GiB, "percent": 6.3},
            "disks": [
                {"mount": "/", "device": "/dev/nvme0n1p2", "fstype": "ext4", "total_bytes": 3700 * GiB, "used_bytes": 1200 * GiB, "percent": 32.4},
                {"mount": "/data", "device": "/dev/nvme1n1", "fstype": "xfs", "total_bytes": 7400 * GiB, "used_bytes": 6800 * GiB, "percent": 91.9},
            ],
            "disk_io": {"read_bytes_s": 52_000_000.0, "write_bytes_s": 1_300_000.0},
            "net": {
                "rx_bytes_s": 2_000_000 + 1_500_000 * math.sin(t / 9),
                "tx_bytes_s": 300_000.0,
                "per_nic": {"enP7s7": {"rx_bytes_s": 2_000_000.0, "tx_bytes_s": 300_000.0}, "docker0": {"rx_bytes_s": 1200.0, "tx_bytes_s": 800.0}},
            },
            "temperatures": [
                {"chip": "acpitz", "label": "temp1", "current_c": 54.0, "high_c": None, "critical_c": 105.0},
                {"chip": "nvme", "label": "Composite", "current_c": 47.9, "high_c": 84.8, "critical_c": 89.8},
            ],
            "fans": [],
            "power": [{"chip": "spbm", "label": "sys_total", "power_w": 142.5}],
        },
        "gpus": gpus,
        "gpu_status": {
            "state": "ok",
            "message": f"{len(gpus)} GPU(s)",
            "fix": None,
            "driver_version": "580.95.05",
            "nvml_version": "13.580.95.05",
            "simulated": True,
        },
        "noise": {
            "index": 41.0,
            "source": "power-thermal",
            "inputs": {"gpu_power_w": 55.0, "power_ratio": 0.39, "hottest_c": 62.0, "temp_ratio": 0.45},
            "dba_estimate": None,
        },
        "containers": containers or [],
        "containers_status": {"state": "ok", "message": "Docker 28.3.3", "fix": None}
        if containers is not None
        else {"state": "unavailable", "message": "permission denied on /var/run/docker.sock", "fix": "add the agent's user to the docker group"},
    }


def hello(host: str, scope: str = "control") -> dict:
    return {
        "type": "hello",
        "v": 1,
        "agent_version": "0.1.0",
        "host": {
            "hostname": host,
            "os": "Linux",
            "kernel": "6.11",
            "arch": "aarch64",
            "cpu_model": None,
            "cpu_count": 20,
            "boot_time": NOW - 86400,
            "memory_total_bytes": 128 * GiB,
        },
        "interval_s": 1.0,
        "scope": scope,
        "simulated": True,
        "oldest_seq": 1,
        "latest_seq": 120,
    }


class FakeLogsClient(AgentClient):
    async def container_logs(self, ref: str, tail: int = 200) -> list[str]:
        return [entry.text for entry in await self.container_log_entries(ref, tail)]

    async def container_log_entries(self, ref: str, tail: int = 200) -> list[LogLine]:
        lines = [
            LogLine(f"2026-11-29T14:{i // 10:02d}:{i % 10:02d}.{i:03d}000000Z", f"INFO 11-29 14:0{i % 10}:00 [engine] step {i}: 42 tokens/s") for i in range(30)
        ]
        return lines + [LogLine("2026-11-29T14:03:00.000000000Z", "stderr| WARNING kv cache 91% full")]

    async def follow_logs(self, ref, on_line, tail: int = 0) -> None:
        await self.follow_log_entries(ref, lambda entry: on_line(entry.text), tail)

    async def follow_log_entries(self, ref, on_entry, tail: int = 0) -> None:
        on_entry(LogLine(None, "-- end of log: container stopped (exit code 0) --"))


def spark_client(scope: str = "control") -> AgentClient:
    cl = FakeLogsClient(Target("spark-01", "http://spark-01.local:8611", "t"), clock=clock)
    cl.handle_frame(hello("spark-01", scope))
    for seq in range(1, 121):
        cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
    return cl


def fleet() -> list[AgentClient]:
    stale = AgentClient(Target("h200-box", "http://10.0.0.7:8611", "t"), clock=clock)
    stale.handle_frame(hello("gpu-node-7"))  # the agent's hostname differs from the user's name for it: both show
    for seq in range(1, 61):
        stale.handle_frame(snapshot_frame(seq, "gpu-node-7", [gpu_h200(0, seq, 71.0), gpu_h200(1, seq, 88.0)], None))
    stale.state, stale.reason, stale.attempt = c.RECONNECTING, c._short_error(ConnectionRefusedError(111, "Connect call failed"), stale.target.url), 3
    stale.next_try_at, stale.last_frame_at = NOW + 4, NOW - 12
    denied = AgentClient(Target("lab-3", "http://lab-3:8611", "bad"), clock=clock)
    denied.state, denied.reason = c.AUTH_FAILED, c.auth_advice("lab-3", denied.target, 401)
    return [spark_client(), stale, denied]


CATALOG = [
    {
        "name": "vllm",
        "description": "vLLM OpenAI-compatible server",
        "image": "nvcr.io/nvidia/vllm:25.09-py3",
        "params": {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu_memory_utilization": "auto"},
        "ports": {"8000/tcp": 8000},
        "secrets": {"HF_TOKEN": True},
        "memory": {"fraction_param": "gpu_memory_utilization"},
        "state": {
            "state": "ready",
            "message": None,
            "since": NOW - 600,
            "url": "http://spark-01.local:8000",
            "running": True,
            "claim_bytes": int(0.42 * 128 * GiB),
            "fraction_param": "gpu_memory_utilization",
            "fraction": 0.42,
            "listen": ["127.0.0.1:8000"],
        },
    },
    {
        "name": "sglang",
        "description": "SGLang server",
        "image": "lmsysorg/sglang:spark",
        "params": {"model": "meta-llama/Llama-3.1-8B-Instruct"},
        "ports": {"30000/tcp": 30000},
        "secrets": {"HF_TOKEN": False},
        "state": {"state": "idle", "message": None, "running": False, "listen": ["0.0.0.0:30000"]},
    },
    {
        "name": "trtllm",
        "description": "TensorRT-LLM trtllm-serve",
        "image": "nvcr.io/nvidia/tensorrt-llm:1.0",
        "params": {"model": "nvidia/Llama-3.1-8B-Instruct-FP4"},
        "ports": {"8355/tcp": 8355},
        "secrets": {},
        "state": {
            "state": "failed",
            "message": "container exited",
            "exit_code": 1,
            "since": NOW - 300,
            "log_tail": ["ValueError: out of memory while loading weights"],
            "running": False,
        },
    },
    {
        "name": "ollama",
        "description": "Ollama",
        "image": "ollama/ollama:latest",
        "params": {},
        "ports": {"11434/tcp": 11434},
        "secrets": {},
        "state": {"state": "idle"},
    },
]


def app_for(clients: list[AgentClient], view: str) -> SparkdeckApp:
    return SparkdeckApp(clients=clients, clock=clock, connect=False, start_view=view)


def guard_frame(ts, result="stopped", message="stopped sparkdeck-vllm (model vllm): SIGTERM, SIGKILL after 2 s; memory for models -0.40 GiB"):
    from agent.protocol import GuardEvent

    frame = {
        "type": "guard",
        "v": 1,
        "ts": ts,
        "action": "stop-newest-model",
        "cause": "memory",
        "result": result,
        "message": message,
        "available_bytes": 7 * 2**30,
        "reserve_bytes": 8 * 2**30,
        "models_available_bytes": -(2**30),
        "full_avg10": 0.0,
        "container": {"id": "abc123abc123", "name": "sparkdeck-vllm", "model": "vllm", "memory_bytes": 2**30, "gpu_memory_bytes": None},
    }
    GuardEvent.model_validate(frame)  # what the agent sends
    return frame
