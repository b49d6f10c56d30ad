"""The saturation point: the last load level the server still kept up with.

Closed loop (users): levels sorted by load; level i is the *knee* when its scaling efficiency —
relative throughput gain over relative load gain against the level before — is below
``min_efficiency`` while tail latency rose by at least ``min_latency_rise``, and no later level
beats the one before it by more than ``resume_margin`` (so one noisy level is not a knee).
Open loop (req/s): a level is *served* when it completed at least ``served_share`` of what it
dispatched and its waiting queue did not grow; the knee is the first level that was not served.
Either way the saturation point is the level before the knee. Thresholds: ``satscope.reports._thresholds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RULE", "RULE_OPEN", "Knee", "find_knee"]

T = THRESHOLDS
RULE = (
    f"levels sorted by offered load; the knee is the first level whose throughput gain is under "
    f"{T.min_efficiency:g}x its load gain (relative to the level before) while tail latency "
    f"(TTFT, ITL or E2E p99, from intended send) rose at least {T.min_latency_rise:g}x and "
    f"{T.min_latency_rise_s * 1e3:g} ms (or the share of "
    f"dispatches dropped rose by {T.min_dropped_share:.0%} of them) and no later "
    f"level exceeds the level before by more than {T.resume_margin:g}x; the saturation point is the "
    f"level before the knee"
)
RULE_OPEN = (
    f"open loop: levels sorted by offered rate; a level is served when the requests it completed "
    f"(over its span shifted by the unloaded request time) are at least {T.served_share:.0%} of those "
    f"it dispatched and its waiting queue grew by less than {T.queue_growth_per_s:g} requests/s (a shortfall "
    f"or queue rise counts only past twice the boundary noise, 2√(1 + rate × unloaded request time)); the "
    f"knee is the first level not served, the saturation point the level before it"
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
    sustainable_per_s: float | None = None  # open loop: the most served at or past the knee


LATENCY_COLUMNS = ("ttft_intended_p99_s", "itl_p99_s", "e2e_intended_p99_s")


def _dropped_share(levels: pd.DataFrame, i: int) -> float:
    if "requests_dropped" not in levels or "requests" not in levels:
        return 0.0
    dropped, sent = float(levels["requests_dropped"].iloc[i]), float(levels["requests"].iloc[i])
    return dropped / (dropped + sent) if dropped + sent > 0 else 0.0


def _latency_rose(levels: pd.DataFrame, i: int, p: int) -> bool:
    """Any tail latency rose by ``min_latency_rise``, or the load generator had to drop dispatches
    (an open-loop queue capped by --max-in-flight cannot grow, so its latency cannot either).
    True when the run has no latency to judge by."""
    import math

    if _dropped_share(levels, i) - _dropped_share(levels, p) >= T.min_dropped_share:
        return True
    judged = False
    for col in LATENCY_COLUMNS:
        if col not in levels:
            continue
        now, before = float(levels[col].iloc[i]), float(levels[col].iloc[p])
        if math.isfinite(now) and math.isfinite(before) and before > 0:
            judged = True
            if now >= T.min_latency_rise * before and now - before >= T.min_latency_rise_s:
                return True
    return not judged


def find_knee(levels: pd.DataFrame, method: str, open_loop: bool = False) -> Knee:
    """``levels`` needs ``offered_load`` and throughput columns; adds ``scaling_efficiency``.

    With ``open_loop`` it also needs ``served_per_s`` and ``dispatched_per_s`` (``satscope.reports._levels``).
    """
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
        stays_flat = thr[i:].max() <= T.resume_margin * thr[p]
        if knee is None and eff[i] < T.min_efficiency and latency_rose and stays_flat:
            knee = i
    lv = lv.assign(scaling_efficiency=eff)
    if open_loop and "served_per_s" in lv:
        return _open_knee(lv, method, col)
    if knee is None:
        return Knee(False, method, lv, len(lv) - 1 if len(lv) else None, None, col)
    return Knee(True, method, lv, knee - 1, knee, col)


def count_noise(levels: pd.DataFrame) -> pd.Series:
    """Per level: twice the count noise of a stable level's shortfall, in requests.

    A served level's shortfall (dispatched − completed over its span shifted by the unloaded
    request time) and its queue's rise both come from the requests in flight at its two ends, about
    rate × request time of them (Little's law), so their noise is 2√(1 + rate × request time),
    not the √ of every request dispatched: a level of many short requests is judged finely.
    """
    import numpy as np

    in_flight = (levels["dispatched_per_s"] * levels.get("request_s", 0.0)).fillna(0.0)
    return 2.0 * np.sqrt(1.0 + in_flight.clip(lower=0.0))


def allowance(levels: pd.DataFrame) -> pd.Series:
    """Per level: the shortfall a served level may show, in requests: (1 − ``served_share``) of what
    it dispatched over its span, and at least the count noise (``count_noise``)."""
    import numpy as np

    sent = (levels["dispatched_per_s"] * levels.get("span_s", 1.0)).fillna(0.0)
    return np.maximum((1.0 - T.served_share) * sent, count_noise(levels))


def served(levels: pd.DataFrame) -> pd.Series:
    """Per level: served what it dispatched (within ``served_share``) with no growing queue.

    A shortfall or a rise of the server's waiting queue over the level counts only when it is more
    than (1 − ``served_share``) of the requests dispatched *and* more than the count noise
    (``count_noise``), so a short level is not past the knee because one request ended late or a
    Poisson burst queued a few for a moment.
    """
    import numpy as np

    span = levels.get("span_s", 1.0)
    sent = (levels["dispatched_per_s"] * span).fillna(0.0)
    allowed = allowance(levels)
    short = sent - (levels["served_per_s"] * span).fillna(0.0)
    ok = ~(short > allowed)
    if "requests_waiting_growth_per_s" in levels:
        growth = np.nan_to_num(levels["requests_waiting_growth_per_s"].to_numpy(dtype=float))
        ok &= ~((growth >= T.queue_growth_per_s) & (growth * span > allowed))
    return ok


def _open_knee(lv: pd.DataFrame, method: str, col: str) -> Knee:
    import numpy as np

    ok = served(lv).to_numpy()
    lv = lv.assign(served_share=lv["served_per_s"] / lv["dispatched_per_s"].where(lv["dispatched_per_s"] > 0))
    if ok.all() or not len(lv):
        return Knee(False, method, lv, len(lv) - 1 if len(lv) else None, None, col, RULE_OPEN)
    knee = int(np.flatnonzero(~ok)[0])
    best = float(np.nanmax(lv["served_per_s"].to_numpy(dtype=float)[knee:]))
    return Knee(True, method, lv, knee - 1 if knee > 0 else None, knee, col, RULE_OPEN, best)
