"""The fit check's arithmetic and the catalog's refusal of bad memory claims (pure logic; the real
agent and Docker engine are in tests/integration/test_models_fit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.collectors.memory import GIB
from agent.containers.catalog import Catalog, ModelTemplate, RenderError
from agent.containers.memory_fit import InsufficientMemory, holders, pending_bytes, plan

TOTAL = 100 * GIB


def mem(free_for_models: int, total: int = TOTAL, reserve: int = 8 * GIB) -> dict:
    return {"total_bytes": total, "available_bytes": free_for_models + reserve, "reserve_bytes": reserve, "models_available_bytes": free_for_models}


def template(**memory) -> ModelTemplate:
    params = {"util": "auto"} if "fraction_param" in memory else {}
    return ModelTemplate.model_validate(
        {"name": "m", "image": "busybox", "command": ["run", "{util}"] if params else ["run"], "params": params, "memory": memory}
    )


AUTO = template(fraction_param="util")


@pytest.mark.parametrize(
    ("free", "expected"),
    [(50 * GIB, 0.50), (99 * GIB, 0.85), (int(42.99 * GIB), 0.42), (5 * GIB, 0.05)],
)
def test_auto_takes_the_largest_share_that_fits_rounded_down(free: int, expected: float) -> None:
    fit = plan(AUTO, {}, mem(free), True, 0, [])
    assert fit.fraction == expected and fit.params["util"] == f"{expected:.2f}"
    assert fit.claim_bytes == TOTAL * round(expected * 100) // 100 <= free


def test_auto_below_the_floor_is_refused_unless_forced() -> None:
    with pytest.raises(InsufficientMemory) as exc:
        plan(AUTO, {}, mem(4 * GIB), True, 0, [])
    assert exc.value.extra["needed_bytes"] == 5 * GIB and exc.value.extra["free_bytes"] == 4 * GIB
    forced = plan(AUTO, {}, mem(4 * GIB), True, 0, [], force=True)
    assert forced.fraction == 0.05 and forced.report["forced"] is True


def test_the_template_max_and_pending_claims_cap_auto() -> None:
    assert plan(template(fraction_param="util", max_fraction=0.3), {}, mem(90 * GIB), True, 0, []).fraction == 0.3
    assert plan(AUTO, {}, mem(90 * GIB), True, 60 * GIB, []).fraction == 0.30  # 90 free less 60 claimed by a starting model


def test_fixed_and_explicit_claims() -> None:
    fixed = template(gib=20)
    assert plan(fixed, {}, mem(21 * GIB), True, 0, []).claim_bytes == 20 * GIB
    with pytest.raises(InsufficientMemory, match="needs 20.0 GiB but 19.0 GiB is free"):
        plan(fixed, {}, mem(19 * GIB), True, 0, [])
    with pytest.raises(InsufficientMemory, match="claimed by models still starting"):
        plan(fixed, {}, mem(30 * GIB), True, 11 * GIB, [])
    fit = plan(AUTO, {"util": "0.3"}, mem(31 * GIB), True, 0, [])
    assert fit.fraction == 0.3 and fit.params["util"] == "0.3"  # as given, not reformatted
    with pytest.raises(InsufficientMemory, match="util=auto would size it"):
        plan(AUTO, {"util": 0.5}, mem(31 * GIB), True, 0, [])
    for bad in ("0", "1.01", "-0.2", "half"):
        with pytest.raises(RenderError):
            plan(AUTO, {"util": bad}, mem(31 * GIB), True, 0, [])


def test_nothing_is_checked_where_memory_is_not_unified() -> None:
    fit = plan(AUTO, {}, mem(GIB), False, 0, [])
    assert fit.fraction == 0.85 and fit.report == {"checked": False}
    assert plan(template(gib=500), {}, mem(GIB), False, 0, []).report == {"checked": False}
    assert plan(ModelTemplate(name="plain", image="busybox"), {}, mem(0), True, 0, []).claim_bytes is None


def test_pending_is_claim_less_what_a_starting_model_has_taken() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "a" * 12, "full_id": "a" * 64, "name": "sparkdeck-a", "state": "running", "gpu_memory_bytes": 3 * GIB, "memory_bytes": GIB},
        {"id": "b" * 12, "full_id": "b" * 64, "name": "big", "state": "running", "gpu_memory_bytes": None, "memory_bytes": 9 * GIB},
        {"id": "c" * 12, "full_id": "c" * 64, "name": "gone", "state": "exited", "gpu_memory_bytes": None, "memory_bytes": None},
    ]
    states: dict[str, dict[str, Any]] = {
        "a": {"state": "starting", "container": "a" * 64, "claim_bytes": 10 * GIB},  # took max(3, 1) GiB so far
        "p": {"state": "pulling", "container": None, "claim_bytes": 4 * GIB},  # no container yet: all of it
        "r": {"state": "ready", "container": "b" * 64, "claim_bytes": 50 * GIB},  # what it took is in MemAvailable
        "f": {"state": "failed", "claim_bytes": 50 * GIB},
        "n": {"state": "starting", "claim_bytes": None},
    }
    assert pending_bytes(states, rows) == 7 * GIB + 4 * GIB
    assert pending_bytes(states, rows, skip="a") == 4 * GIB
    assert [h["name"] for h in holders(rows)] == ["sparkdeck-a", "big"]  # GPU memory first, then RSS; running only


BAD = {
    "both": 'memory = { gib = 1, fraction_param = "util" }',
    "neither": "memory = { }",
    "not-a-param": 'memory = { fraction_param = "nope" }',
    "default-out-of-range": 'memory = { fraction_param = "util" }\nparams = { util = 1.5 }',
    "max-out-of-range": 'memory = { fraction_param = "util", max_fraction = 1.2 }',
    "max-zero": 'memory = { fraction_param = "util", max_fraction = 0 }',
    "max-without-param": "memory = { gib = 2, max_fraction = 0.5 }",
}


def test_bad_claims_are_refused_at_catalog_load_with_the_name(tmp_path: Path) -> None:
    entries = []
    for name, claim in BAD.items():
        params = "" if "params" in claim else 'params = { util = "auto" }'
        entries.append(f'[[model]]\nname = "bad-{name}"\nimage = "busybox"\n{params}\n{claim}\n')
    entries.append('[[model]]\nname = "good"\nimage = "busybox"\nparams = { util = "0.4" }\nmemory = { fraction_param = "util", max_fraction = 0.5 }\n')
    f = tmp_path / "models.toml"
    f.write_text("\n".join(entries))
    c = Catalog(f)
    assert c.get("good") is not None and c.get("good").memory.max_fraction == 0.5
    for name in BAD:
        assert c.get(f"bad-{name}") is None and f"bad-{name}" in c.broken, name
        assert any(f"'bad-{name}'" in e for e in c.errors), name
    assert "not both" in c.broken["bad-both"] and "'nope' is not one of params" in c.broken["bad-not-a-param"]
    assert "outside (0, 1]" in c.broken["bad-default-out-of-range"]
