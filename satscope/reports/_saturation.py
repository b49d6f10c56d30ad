"""The `saturation` block of summary.json: the saturation point, the knee and the safe operating
point, each with its figures (docs/summary-format.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._operating import RULE_SAFE, safe_point
from satscope.reports._stats import clean

if TYPE_CHECKING:
    import pandas as pd

    from satscope.reports._knee import Knee

__all__ = ["FIGURES", "round_load", "saturation_block"]

FIGURES = (
    "requests_per_s",
    "served_per_s",
    "dispatched_per_s",
    "output_tokens_per_s",
    "total_tokens_per_s",
    "ttft_p99_s",
    "itl_p99_s",
    "e2e_p99_s",
    "ttft_intended_p99_s",
    "preemptions_per_s",
    "requests_waiting_mean",
)


def round_load(value: float | None) -> float | None:
    """A load as a reader would name it: two significant figures, whole numbers from 10 up."""
    import math

    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    if abs(value) >= 10:
        return float(round(value))
    digits = 1 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


def _level(lv: pd.DataFrame, pos: int | None) -> dict[str, Any]:
    row = lv.iloc[pos] if pos is not None else None
    out: dict[str, Any] = {
        "stage": clean(row["stage"]) if row is not None else None,
        "offered_load": clean(row["offered_load"]) if row is not None else None,
        "offered_load_named": round_load(clean(row["offered_load"])) if row is not None else None,
        "at_s": clean(row["start_at_s"]) if row is not None and "start_at_s" in lv else None,
    }
    for col in FIGURES:
        out[col] = clean(row[col]) if row is not None and col in lv else None
    return out


def saturation_block(knee: Knee, kind: str) -> dict[str, Any]:
    """Fields of the saturation point at top level (as before), plus `knee` and `safe` objects."""
    lv = knee.levels
    open_loop = kind == "rate_rps"
    point = _level(lv, knee.saturation_pos)
    out: dict[str, Any] = {"found": knee.found, "rule": knee.rule, "method": knee.method, "load_kind": kind}
    out |= point
    knee_row = _level(lv, knee.knee_pos)
    out["knee_stage"] = knee_row["stage"]
    out["knee_offered_load"] = knee_row["offered_load"]
    out["knee_scaling_efficiency"] = (
        clean(lv["scaling_efficiency"].iloc[knee.knee_pos]) if knee.knee_pos is not None else None
    )
    out["knee"] = knee_row if knee.knee_pos is not None else None
    out["sustainable_per_s"] = clean(knee.sustainable_per_s)
    out["peak_output_tokens_per_s"] = clean(lv["output_tokens_per_s"].max()) if len(lv) else None
    safe_pos, why = safe_point(lv, knee.saturation_pos, knee.found, open_loop)
    out["safe"] = _level(lv, safe_pos) | {"rule": RULE_SAFE, "next_level_issue": why}
    return out
