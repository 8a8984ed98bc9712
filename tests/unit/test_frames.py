"""The one frame builder and the TypedDicts beside the pydantic models (agent/protocol.py)."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest

from agent import protocol
from agent.collectors.gpu import GpuCollector
from agent.collectors.host import HostCollector
from agent.collectors.noise import NoiseModel
from agent.collectors.nvml import load_nvml
from agent.hub import Hub
from agent.protocol import FRAME_MODELS, PROTOCOL_VERSION, encode, error_frame, frame
from agent.ring import Ring
from agent.sampler import Sampler

TYPED: dict[str, Any] = {
    "hello": protocol.HelloFrame,
    "snapshot": protocol.SnapshotFrame,
    "backfill": protocol.BackfillFrame,
    "error": protocol.ErrorFrameDict,
    "pong": protocol.PongFrame,
    "pull_progress": protocol.PullProgressFrame,
    "model_state": protocol.ModelStateFrame,
    "log": protocol.LogFrame,
    "log_end": protocol.LogEndFrame,
    "guard": protocol.GuardFrame,
    "alert": protocol.AlertFrameDict,
}

HOST_INFO = {
    "hostname": "spark",
    "os": "Linux",
    "kernel": "6.8",
    "arch": "aarch64",
    "cpu_model": None,
    "cpu_count": 20,
    "boot_time": 1.0,
    "memory_total_bytes": 1 << 37,
}

# fields of one frame of each type, as the agent's builders pass them (snapshot: see test_snapshot_builder_frame_validates)
EXAMPLES: dict[str, dict[str, Any]] = {
    "hello": dict(agent_version="0.9", host=HOST_INFO, interval_s=1.0, scope="read", simulated=True, oldest_seq=1, latest_seq=9, incidents=0),
    "backfill": dict(since_seq=3, first_seq=4, last_seq=9, count=6, complete=True),
    "error": dict(code="bad_json", message="message is not valid JSON"),
    "pong": dict(id="x"),
    "pull_progress": dict(model="qwen", image="vllm:1", status="Downloading", current_bytes=10, total_bytes=100),
    "model_state": dict(
        name="qwen",
        state="failed",
        message="exited",
        since=1.5,
        container="c1",
        url=None,
        listen=None,
        claim_bytes=None,
        fraction_param=None,
        fraction=None,
        exit_code=1,
        log_tail=["boom"],
    ),
    "log": dict(stream="stderr", ts="2026-12-02T00:00:00Z", text="hello"),
    "log_end": dict(reason="container stopped", exit_code=0),
    "guard": dict(
        ts=1.0,
        action="warn",
        cause="memory",
        result="warned",
        message="warning: short",
        available_bytes=1,
        reserve_bytes=2,
        models_available_bytes=-1,
        full_avg10=None,
        container=None,
    ),
    "alert": dict(
        id=1,
        rule="gpu-hot",
        severity="warning",
        state="firing",
        subject="gpus.0.temperature_c",
        message="hot",
        host="spark",
        since=1.0,
        resolved_at=None,
        ts=1.0,
        value=91.0,
        threshold=90.0,
        details=None,
    ),
}


def test_frame_stamps_type_and_version_first_and_keeps_the_field_order():
    built = frame("backfill", since_seq=3, first_seq=4, last_seq=9, count=6, complete=True)
    assert list(built) == ["type", "v", "since_seq", "first_seq", "last_seq", "count", "complete"]
    assert (built["type"], built["v"]) == ("backfill", PROTOCOL_VERSION)
    # what the hand-built dict it replaced put on the wire, byte for byte
    by_hand = {"type": "backfill", "v": PROTOCOL_VERSION, "since_seq": 3, "first_seq": 4, "last_seq": 9, "count": 6, "complete": True}
    assert encode(built) == encode(by_hand)


def test_error_frame_is_the_error_frame():
    assert json.loads(error_frame("bad_json", "no")) == {"type": "error", "v": PROTOCOL_VERSION, "code": "bad_json", "message": "no"}
    protocol.ErrorFrame.model_validate_json(error_frame("bad_json", "no"))


def test_every_frame_type_has_a_model_and_a_typeddict():
    assert set(TYPED) == set(FRAME_MODELS)
    for kind, typed in TYPED.items():
        hints = typing.get_type_hints(typed)
        assert typing.get_args(hints["type"]) == (kind,), kind


@pytest.mark.parametrize("kind", sorted(TYPED))
def test_typeddict_keys_are_the_models_fields(kind):
    typed, model = TYPED[kind], FRAME_MODELS[kind]
    keys = typed.__required_keys__ | typed.__optional_keys__
    assert keys == set(model.model_fields), f"{typed.__name__} vs {model.__name__}: {keys ^ set(model.model_fields)}"
    # a key the TypedDict requires is one the model requires or defaults: never one the model may lack
    optional_in_model = {name for name, f in model.model_fields.items() if not f.is_required()}
    assert typed.__optional_keys__ <= optional_in_model, kind


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_each_built_frame_validates_against_its_model(kind):
    built = frame(kind, **EXAMPLES[kind])
    FRAME_MODELS[kind].model_validate_json(encode(built))  # extra="forbid": no stray key passes
    with pytest.raises(ValueError):
        FRAME_MODELS[kind].model_validate_json(encode({**built, "surprise": 1}))


def test_model_state_without_the_optional_keys_validates():
    # the launcher's state before a container exists: no container/url/exit_code keys at all
    FRAME_MODELS["model_state"].model_validate(frame("model_state", name="qwen", state="pulling", message=None, since=1.0))


async def test_the_samplers_snapshot_validates():
    """The sampler's real builder on the simulated GB10 and this machine's /proc (no process, no engine)."""
    sampler = Sampler(
        interval_s=1.0,
        gpu=GpuCollector(load_nvml("gb10"), simulated=True),
        host=HostCollector(proc_root="/proc", sys_root="/sys", reserve_bytes=0),
        noise=NoiseModel(),
        ring=Ring(4),
        hub=Hub(),
        simulated=True,
    )
    snap = await sampler.sample_once()
    assert list(snap)[:3] == ["type", "v", "seq"] and snap["v"] == PROTOCOL_VERSION
    protocol.Snapshot.model_validate_json(encode(snap))
