"""The client's cue to fetch throttle events again: a frame whose reasons differ from the last known, or a new session."""

from __future__ import annotations

from agent import protocol
from agent.history.events import ThrottleEvents
from tests.helpers.tui_fakes import CONTAINERS, gpu_gb10, hello, snapshot_frame
from tui.client import AgentClient, Target


def frame(seq: int, *reasons: list[str] | None, status: str = "ok") -> dict:
    gpus = []
    for i, r in enumerate(reasons):
        g = gpu_gb10(seq) | {"index": i, "throttle_reasons": r, "status": status}
        gpus.append(g)
    f = snapshot_frame(seq, "spark-01", gpus, CONTAINERS)
    f["ts"] = 1000.0 + seq
    return f


def test_throttle_active_is_the_rule_the_agents_events_follow():
    assert protocol.throttle_active(frame(1, ["gpu_idle"], ["sw_power_cap", "gpu_idle"], None)) == {0: frozenset(), 1: frozenset({"sw_power_cap"})}
    assert protocol.throttle_active(frame(1, ["sw_power_cap"], status="error")) == {}  # an errored GPU: no guess
    events = ThrottleEvents()
    for seq, reasons in enumerate([["gpu_idle"], ["sw_power_cap"], None, ["sw_power_cap", "hw_slowdown"], []], start=1):
        events.note_frame(frame(seq, reasons))
    assert [(e["reason"], e["start"], e["end"]) for e in events.recent] == [("sw_power_cap", 1002.0, 1005.0), ("hw_slowdown", 1004.0, 1005.0)]


def test_changes_are_counted_once_each_and_unknown_reasons_change_nothing():
    cl = AgentClient(Target("spark-01", "http://spark-01.local:8611", "t"))
    cl.handle_frame(hello("spark-01"))
    start = cl.throttle_changes
    steps: list[tuple[list[list[str] | None], int]] = [
        ([[]], 1),  # the first reasons known
        ([[]], 0),
        ([["gpu_idle"]], 0),  # idle is not throttling
        ([["sw_power_cap"]], 1),
        ([["sw_power_cap"]], 0),
        ([None], 0),  # unknown this frame: the last known stay
        ([["sw_power_cap"]], 0),
        ([[], ["hw_slowdown"]], 1),  # the first GPU's event ends, a second GPU's begins: one frame, one cue
        ([[]], 0),  # the second GPU left the frame: forgotten, not a change
        ([[], []], 1),
    ]
    for seq, (reasons, more) in enumerate(steps, start=1):
        before = cl.throttle_changes
        cl.handle_frame(frame(seq, *reasons))
        assert cl.throttle_changes - before == more, (seq, reasons)
        assert set(cl.throttle_active) <= set(range(len(reasons)))  # bounded by one frame's GPUs
    assert cl.throttle_active == {0: frozenset(), 1: frozenset()}
    assert cl.throttle_changes - start == 4
    cl.handle_frame(hello("spark-01"))  # a new session: what happened meanwhile is not in the snapshots seen
    assert cl.throttle_changes - start == 5
