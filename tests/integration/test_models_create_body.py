"""What the README's template fields become on a real Docker engine: the created container, inspected.

`ipc`, `shm_size`, `ulimits`, `~` in `volumes` (models_home), `gpus` (DeviceRequests), and HF/NGC keys
from secrets.env: in the container's environment, never in the agent's log, audit log or frames."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, open_stream, wait_for

pytestmark = pytest.mark.docker

HF = "hf_" + "QwErTy0123456789AbCdEfGhIjKlMnOpQr"  # shaped like a real Hugging Face token
NGC = "nvapi-" + "Zx9" * 20  # shaped like an NGC API key

CATALOG = """
[[model]]
name = "sdbody-full"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
ipc = "host"
shm_size = "256m"
ulimits = {{ memlock = 4194304, stack = 67108864 }}  # memlock within the test engine's own hard limit (8 MiB)
ports = {{ "8080/tcp" = {port} }}
volumes = ["~/.cache/huggingface:/root/.cache/huggingface"]
env = {{ HF_TOKEN = "${{HF_TOKEN}}", NGC_API_KEY = "${{NGC_API_KEY}}" }}

[[model]]
name = "sdbody-talker"
image = "sparkdeck-test/busybox:latest"
command = ["sh", "-c", "echo hf=$HF_TOKEN; echo ngc=$NGC_API_KEY >&2; exit 3"]
ports = {{ "8080/tcp" = {talker_port} }}
health = {{ port = "8080/tcp", path = "/health" }}   # dies before it is healthy: a failure with its last lines
env = {{ HF_TOKEN = "${{HF_TOKEN}}", NGC_API_KEY = "${{NGC_API_KEY}}" }}

[[model]]
name = "sdbody-gpu"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
gpus = "all"
"""
NAMES = ("sparkdeck-sdbody-full", "sparkdeck-sdbody-talker", "sparkdeck-sdbody-gpu")


@pytest.fixture
def body_agent(docker_engine, start_agent, tmp_path: Path):
    models = tmp_path / "models.toml"
    models.write_text(CATALOG.format(port=free_port(), talker_port=free_port()))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "secrets.env").write_text(f"HF_TOKEN={HF}\nNGC_API_KEY={NGC}\n")
    home = tmp_path / "owner-home"
    (home / ".cache/huggingface").mkdir(parents=True)
    env = {"SPARKDECK_MODELS_HOME": str(home)}
    agent = start_agent("--simulate", "gb10", "--interval", "0.5", "--log-level", "debug", "--models", str(models), env=env, state_dir=state)
    agent.models_home = home
    yield agent
    docker_engine.cli("rm", "-f", *NAMES, check=False)


def inspect(docker_engine, name: str) -> dict:
    return json.loads(docker_engine.cli("inspect", name))[0]


async def test_template_fields_reach_the_created_container_and_keys_stay_out_of_logs(docker_engine, body_agent) -> None:
    agent = body_agent
    frames: list[str] = []
    async with open_stream(agent, agent.control_token) as ws:
        reader = asyncio.create_task(_keep(ws, frames))  # every frame a control client got meanwhile
        assert (r := call(agent, "POST", "/api/v1/models/sdbody-full/start", agent.control_token)).status_code == 202, r.text
        wait_for(lambda: model_state(agent, "sdbody-full").get("running"), 60, "sdbody-full running")
        got = inspect(docker_engine, "sparkdeck-sdbody-full")
        hc = got["HostConfig"]
        assert hc["IpcMode"] == "host"
        assert hc["ShmSize"] == 256 * 2**20
        assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in hc["Ulimits"]) == [("memlock", 4194304, 4194304), ("stack", 67108864, 67108864)]
        assert docker_engine.cli("exec", "sparkdeck-sdbody-full", "sh", "-c", "ulimit -s; ulimit -l").split() == [
            "65536",
            "4096",
        ]  # KiB, as the process sees them
        assert hc["Binds"] == [f"{agent.models_home}/.cache/huggingface:/root/.cache/huggingface"]  # ~ is models_home
        mount = next(m for m in got["Mounts"] if m["Destination"] == "/root/.cache/huggingface")
        assert mount["Source"] == str(agent.models_home / ".cache/huggingface")
        assert {f"HF_TOKEN={HF}", f"NGC_API_KEY={NGC}"} <= set(got["Config"]["Env"])  # the keys did reach the container

        # a server that prints its keys and dies: the failure report and every log line carry neither
        assert (r := call(agent, "POST", "/api/v1/models/sdbody-talker/start", agent.control_token)).status_code == 202, r.text
        failed = wait_for(lambda: (s := model_state(agent, "sdbody-talker", agent.control_token))["state"] == "failed" and s, 60, "talker failed")
        tail = "\n".join(failed["log_tail"])
        assert "stdout: hf=" in tail and "stderr: ngc=" in tail, tail  # the lines were read, with the values masked

        # gpus = "all" asks the engine for every GPU: DeviceRequests when it has an NVIDIA runtime,
        # otherwise the engine's own refusal names the request (no GPU on this test machine)
        r = call(agent, "POST", "/api/v1/models/sdbody-gpu/start", agent.control_token)
        if r.status_code == 202:
            wait_for(lambda: model_state(agent, "sdbody-gpu").get("running"), 60, "gpu model running")
            requests = inspect(docker_engine, "sparkdeck-sdbody-gpu")["HostConfig"]["DeviceRequests"]
            assert [(d["Count"], d["Capabilities"]) for d in requests] == [(-1, [["gpu"]])]
        else:  # the engine read the request and refused it: could not select device driver "" with capabilities: [[gpu]]
            assert r.status_code == 502 and r.json()["error"] == "engine_error" and "capabilities: [[gpu]]" in r.json()["detail"], r.text
        reader.cancel()
    audit = call(agent, "GET", "/api/v1/audit", agent.control_token).text + (agent.state_dir / "audit.log").read_text()
    listing = call(agent, "GET", "/api/v1/models", agent.control_token).text
    for where, text in (("agent log", agent.log()), ("audit", audit), ("frames", "\n".join(frames)), ("models listing", listing)):
        assert HF not in text and NGC not in text, f"a key in the {where}"
    assert "model sdbody-talker: failed" in agent.log()  # the log did speak about it


async def _keep(ws, frames: list[str]) -> None:
    async for raw in ws:
        frames.append(str(raw))
