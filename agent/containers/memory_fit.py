"""The launch fit check: does a model's declared memory claim fit what is left for models?

Free for a launch = ``models_available_bytes`` (MemAvailable − reserve, read afresh) minus
what models still pulling or starting have claimed but not yet taken. vLLM allocates its
share minutes after its container starts, so MemAvailable alone would let two quick
launches book the same memory. What a starting model has taken is the larger of its
container's GPU memory and its RSS: on unified memory the two may overlap, and taking the
larger errs toward refusing, never toward double-booking. Once the model is ready (or has
failed) it holds no pending claim: whatever it took is in MemAvailable.

The check applies where GPU memory is unified (the Spark). Elsewhere a fraction param is a
share of the GPU's own memory, which host figures say nothing about; ``auto`` then means the
template's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.collectors.memory import GIB, held_bytes
from agent.containers.catalog import ModelTemplate, RenderError, fraction_value

DEFAULT_MAX_FRACTION = 0.85  # vLLM's 0.9 default leaves the Spark's OS too little (README)
MIN_FRACTION = 0.05  # below this no model server gets far; refuse rather than start one that fails
PENDING_STATES = ("pulling", "starting")
HOLDERS_SHOWN = 3


class InsufficientMemory(Exception):
    def __init__(self, message: str, needed: int, free: int, holders: list[dict[str, Any]]):
        super().__init__(message)
        self.message = message
        self.extra = {"needed_bytes": needed, "free_bytes": free, "holders": holders}


@dataclass
class Fit:
    """The outcome for one launch: what it claims and the params it is rendered with."""

    params: dict[str, Any]
    claim_bytes: int | None = None
    fraction_param: str | None = None
    fraction: float | None = None
    report: dict[str, Any] = field(default_factory=dict)  # needed/free/checked/forced, for the launch answer

    def state(self) -> dict[str, Any]:
        """What the launcher keeps in the model's state (and sends in model_state frames)."""
        return {"claim_bytes": self.claim_bytes, "fraction_param": self.fraction_param, "fraction": self.fraction}


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def taken_by(row: dict[str, Any] | None) -> int:
    if row is None:
        return 0
    return max(row.get("gpu_memory_bytes") or 0, row.get("memory_bytes") or 0)


def _row_of(rows: list[dict[str, Any]], container: str | None) -> dict[str, Any] | None:
    if not container:
        return None
    return next((r for r in rows if r.get("full_id") == container or r["id"] == container[:12] or r.get("name") == container), None)


def pending_bytes(states: dict[str, dict[str, Any]], rows: list[dict[str, Any]], skip: str | None = None) -> int:
    """Claimed but not yet taken, over models still pulling or starting."""
    total = 0
    for name, st in states.items():
        if name == skip or st.get("state") not in PENDING_STATES or not st.get("claim_bytes"):
            continue
        total += max(st["claim_bytes"] - taken_by(_row_of(rows, st.get("container"))), 0)
    return total


def holders(rows: list[dict[str, Any]], n: int = HOLDERS_SHOWN) -> list[dict[str, Any]]:
    """The running containers holding the most: GPU memory first, then RSS."""
    running = [r for r in rows if r.get("state") == "running"]
    running.sort(key=held_bytes, reverse=True)
    return [
        {"name": r["name"], "model": r.get("model"), "gpu_memory_bytes": r.get("gpu_memory_bytes"), "memory_bytes": r.get("memory_bytes")} for r in running[:n]
    ]


def _holders_text(hs: list[dict[str, Any]]) -> str:
    if not hs:
        return ""
    parts = [f"{h['name']} ({_gib(h['gpu_memory_bytes'] or 0)} GPU, {_gib(h['memory_bytes'] or 0)} RSS)" for h in hs]
    return "; holding the most: " + ", ".join(parts)


def plan(
    t: ModelTemplate,
    params: dict[str, Any],
    memory: dict[str, Any] | None,
    unified: bool,
    pending: int,
    rows: list[dict[str, Any]],
    force: bool = False,
) -> Fit:
    """Size and check one launch; raises InsufficientMemory (unless ``force``) or RenderError."""
    claim = t.memory
    if claim is None:  # the template declares nothing to check
        return Fit(dict(params), report={"checked": False})
    out = dict(params)
    fraction, was_auto = None, None
    if claim.fraction_param is not None:
        fp = claim.fraction_param
        try:
            fraction = fraction_value(fp, params.get(fp, t.params[fp]))
        except ValueError as exc:
            raise RenderError("bad_param", str(exc)) from None
        was_auto = fraction is None
    max_fraction = claim.max_fraction or DEFAULT_MAX_FRACTION
    checked = unified and memory is not None and memory.get("models_available_bytes") is not None
    if not checked:  # nothing to check against: auto means the template's maximum
        fit = Fit(out, int(claim.gib * GIB) if claim.gib else None, claim.fraction_param, fraction)
        if claim.fraction_param is not None and fraction is None:
            fit.fraction = max_fraction
        if fit.fraction is not None and claim.fraction_param is not None:
            out[claim.fraction_param] = f"{fit.fraction:.2f}"
        fit.report = {"checked": False}
        return fit
    assert memory is not None
    total = memory["total_bytes"]
    free = memory["models_available_bytes"] - pending
    if claim.gib is not None:
        need = int(claim.gib * GIB)
    elif fraction is not None:
        need = int(fraction * total)
    else:  # auto: the largest share that fits, rounded down to 0.01, at most max_fraction
        # whole percents in integers, so the chosen share times total never exceeds free by rounding
        fits_pct = max(free, 0) * 100 // total if total else 0
        # below MIN_FRACTION it asks for the least useful share, which does not fit: refused unless forced
        pct = max(min(int(max_fraction * 100 + 1e-9), fits_pct), int(MIN_FRACTION * 100))
        fraction, need = pct / 100, total * pct // 100
    fits = need <= free
    if not fits and not force:
        why = (
            f"model {t.name!r} needs {_gib(need)} but {_gib(max(free, 0))} is free for models "
            f"(MemAvailable {_gib(memory['available_bytes'])} − reserve {_gib(memory['reserve_bytes'])}"
            f"{f' − {_gib(pending)} claimed by models still starting' if pending else ''})"
        )
        if was_auto is False:
            why += f"; {claim.fraction_param}=auto would size it to what fits"
        why += _holders_text(holders(rows)) + '. Stop a model, lower its claim, or pass "force": true.'
        raise InsufficientMemory(why, need, free, holders(rows))
    if was_auto:
        out[claim.fraction_param] = f"{fraction:.2f}"  # type: ignore[index]
    return Fit(
        out, need, claim.fraction_param, fraction, {"checked": True, "needed_bytes": need, "free_bytes": free, "fits": fits, "forced": force and not fits}
    )
