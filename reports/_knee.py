"""The saturation point: the last load level at which throughput still rose with offered load.

Rule (docs/reports.md): levels sorted by offered load; level i is the *knee* when its scaling
efficiency — relative throughput gain over relative load gain against the level before — is
below ``MIN_EFFICIENCY`` while tail latency rose by at least ``MIN_LATENCY_RISE``, and no later
level beats the one before it by more than ``RESUME_MARGIN`` (so one noisy level is not a knee).
The saturation point is the level before the first knee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MIN_DROPPED_SHARE",
    "MIN_EFFICIENCY",
    "MIN_LATENCY_RISE",
    "RESUME_MARGIN",
    "Knee",
    "find_knee",
    "levels_from_windows",
]

MIN_EFFICIENCY = 0.5
MIN_LATENCY_RISE = 1.2
MIN_DROPPED_SHARE = 0.05
RESUME_MARGIN = 1.2

RULE = (
    f"levels sorted by offered load; the knee is the first level whose throughput gain is under "
    f"{MIN_EFFICIENCY:g}x its load gain (relative to the level before) while tail latency "
    f"(TTFT, ITL or E2E p99, from intended send) rose at least {MIN_LATENCY_RISE:g}x (or the share of "
    f"dispatches dropped rose by {MIN_DROPPED_SHARE:.0%} of them) and no later "
    f"level exceeds the level before by more than {RESUME_MARGIN:g}x; the saturation point is the "
    f"level before the knee"
)


@dataclass(slots=True)
class Knee:
    """Positions are rows of ``levels`` (sorted by load); None when not found."""

    found: bool
    method: str
    levels: pd.DataFrame
    saturation_pos: int | None
    knee_pos: int | None
    throughput_column: str
    rule: str = RULE


LATENCY_COLUMNS = ("ttft_intended_p99_s", "itl_p99_s", "e2e_intended_p99_s")


def _dropped_share(levels: pd.DataFrame, i: int) -> float:
    if "requests_dropped" not in levels or "requests" not in levels:
        return 0.0
    dropped, sent = float(levels["requests_dropped"].iloc[i]), float(levels["requests"].iloc[i])
    return dropped / (dropped + sent) if dropped + sent > 0 else 0.0


def _latency_rose(levels: pd.DataFrame, i: int, p: int) -> bool:
    """Any tail latency rose by MIN_LATENCY_RISE, or the load generator had to drop dispatches
    (an open-loop queue capped by --max-in-flight cannot grow, so its latency cannot either).
    True when the run has no latency to judge by."""
    import math

    if _dropped_share(levels, i) - _dropped_share(levels, p) >= MIN_DROPPED_SHARE:
        return True
    judged = False
    for col in LATENCY_COLUMNS:
        if col not in levels:
            continue
        now, before = float(levels[col].iloc[i]), float(levels[col].iloc[p])
        if math.isfinite(now) and math.isfinite(before) and before > 0:
            judged = True
            if now >= MIN_LATENCY_RISE * before:
                return True
    return not judged


def find_knee(levels: pd.DataFrame, method: str) -> Knee:
    """``levels`` needs ``offered_load`` and throughput columns; adds ``scaling_efficiency``."""
    import numpy as np

    lv = levels[levels["offered_load"].notna() & (levels["offered_load"] > 0)]
    lv = lv.sort_values("offered_load", kind="stable").reset_index(drop=True)
    col = "output_tokens_per_s" if lv.get("output_tokens_per_s", lv.index * 0.0).sum() > 0 else "requests_per_s"
    thr = lv[col].to_numpy(dtype=float) if len(lv) else np.empty(0)
    load = lv["offered_load"].to_numpy(dtype=float) if len(lv) else np.empty(0)
    eff = np.full(len(lv), np.nan)
    knee = None
    for i in range(1, len(lv)):
        p = i - 1
        if load[i] <= load[p] or thr[p] <= 0:
            continue
        eff[i] = (thr[i] / thr[p] - 1.0) / (load[i] / load[p] - 1.0)
        latency_rose = _latency_rose(lv, i, p)
        stays_flat = thr[i:].max() <= RESUME_MARGIN * thr[p]
        if knee is None and eff[i] < MIN_EFFICIENCY and latency_rose and stays_flat:
            knee = i
    lv = lv.assign(scaling_efficiency=eff)
    if knee is None:
        return Knee(False, method, lv, len(lv) - 1 if len(lv) else None, None, col)
    return Knee(True, method, lv, knee - 1, knee, col)


def levels_from_windows(windows: pd.DataFrame, dispatch_load: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Load levels for runs with too few stages: windows grouped by the offered load they dispatched.

    ``dispatch_load`` is the median offered load of the requests dispatched in each window.
    Figures per level are window means (a p99 here is the mean of window p99s, an approximation).
    """
    import pandas as pd

    w = windows.assign(offered_load=dispatch_load.reindex(windows.index)).dropna(subset=["offered_load"])
    if w["offered_load"].nunique() > bins:
        w = w.assign(offered_load=pd.qcut(w["offered_load"], bins, duplicates="drop").map(lambda iv: iv.mid))
        w["offered_load"] = w["offered_load"].astype(float)
    cols = [
        c
        for c in (
            "output_tokens_per_s",
            "requests_per_s",
            "total_tokens_per_s",
            "ttft_p99_s",
            "ttft_intended_p99_s",
            "itl_p99_s",
            "e2e_p99_s",
            "e2e_intended_p99_s",
        )
        if c in w
    ]
    grouped = w.groupby("offered_load")
    out = grouped[cols].mean()
    out["start_at_s"] = grouped["t_s"].min()
    out = out.reset_index()
    out.insert(0, "stage", None)
    return out
