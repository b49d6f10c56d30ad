"""Load levels: what the knee and the safe operating point are judged over.

A run of hold stages has one level per stage, at the stage's load. A run with ramp (linear),
sine or any other changing stage is cut by the load actually dispatched: each time window gets
the load its requests were dispatched at, and windows with similar loads are pooled into a level.
Either way a level carries, besides throughput and latency, what it *dispatched* (requests sent
or dropped per second) and what it *served*: requests completed ok per second, counted over the
level's span shifted by the unloaded request time, so that requests dispatched near a level's
end count for it and the first level is not short by one request time. ``span_s`` is the time a
level covers (its counts are the rates times it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MAX_BINS", "load_levels"]

MAX_BINS = 8
MIN_BIN_WINDOWS = 4  # windows a pooled level should span, on average
_MEAN_COLUMNS = (
    "output_tokens_per_s",
    "requests_per_s",
    "total_tokens_per_s",
    "ttft_p99_s",
    "ttft_p50_s",
    "ttft_intended_p99_s",
    "itl_p99_s",
    "e2e_p99_s",
    "e2e_intended_p99_s",
    "kv_cache_usage",
    "requests_running",
    "requests_waiting",
    "preemptions_per_s",
    "error_rate",
)


def load_levels(
    stages: pd.DataFrame, windows: pd.DataFrame, req: pd.DataFrame, window_s: float
) -> tuple[pd.DataFrame, str]:
    """(levels in run order, method): ``stages`` when every stage holds one load, else ``load_bins``."""
    profiles = set(stages["profile"].dropna()) if "profile" in stages else set()
    if profiles <= {"hold"} and len(stages):
        return _stage_levels(stages, req), "stages"
    return _bin_levels(windows, req, window_s), "load_bins"


def _shift_s(req: pd.DataFrame) -> float:
    """The unloaded request time: median E2E of the requests dispatched at the lowest load."""
    import numpy as np

    ok = req[req["ok"] & req["offered_load"].notna()]
    if ok.empty:
        return 0.0
    low = ok[ok["offered_load"] <= ok["offered_load"].min() + 1e-9]
    value = float(np.nanmedian(low["e2e_s"].to_numpy(dtype=float))) if len(low) else 0.0
    return value if np.isfinite(value) else 0.0


def _completed_between(ends: np.ndarray, lo: float, hi: float, last: float) -> float:
    """Completions per second in ``[lo, hi)``, the span cut at ``last`` (the run's last end)."""
    import numpy as np

    hi = min(hi, last + 1e-9)
    if hi <= lo:
        return float("nan")
    return float(np.count_nonzero((ends >= lo) & (ends < hi))) / (hi - lo)


def _stage_levels(stages: pd.DataFrame, req: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    lv = stages.copy()
    ends = np.sort(req.loc[req["ok"], "end"].to_numpy(dtype=float))
    last = float(req["end"].max()) if len(req) else 0.0
    served, dispatched, span = [], [], []
    for row in lv.itertuples(index=False):
        dur = max(float(row.duration_s), 1e-9)
        shift = min(_shift_s(req), dur / 2)
        served.append(_completed_between(ends, row.start_at_s + shift, row.end_at_s + shift, last))
        dispatched.append((row.requests + row.requests_dropped) / dur)
        span.append(dur)
    return lv.assign(served_per_s=served, dispatched_per_s=dispatched, span_s=span, request_s=_shift_s(req))


def _bin_levels(windows: pd.DataFrame, req: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Windows pooled by the load their requests were dispatched at (figures are window means)."""
    import numpy as np
    import pandas as pd

    if windows.empty or req.empty:
        return pd.DataFrame(columns=["stage", "offered_load", "start_at_s", "served_per_s", "dispatched_per_s"])
    w_of = np.floor(req["intended_start"].to_numpy(dtype=float) / window_s).astype(np.int64)
    load = pd.Series(req["offered_load"].to_numpy(dtype=float)).groupby(w_of).median()
    dispatched = pd.Series(1.0, index=w_of).groupby(level=0).sum()
    shift = round(min(_shift_s(req), 10 * window_s) / window_s)
    ok_end = np.floor(req.loc[req["ok"], "end"].to_numpy(dtype=float) / window_s).astype(np.int64) - shift
    served = pd.Series(1.0, index=ok_end).groupby(level=0).sum()
    last = int(np.floor(float(req["end"].max()) / window_s)) - shift
    # a window that dispatched nothing still offered its load: take it from the windows around it
    in_stage = windows["stage"].notna() if "stage" in windows else windows["t_s"].notna()
    window_load = load.reindex(windows.index).where(in_stage)
    window_load = window_load.interpolate(limit_area="inside").ffill().bfill().where(in_stage)
    w = windows.assign(
        offered_load=window_load,
        dispatched_per_s=dispatched.reindex(windows.index).fillna(0.0) / window_s,
        served_per_s=served.reindex(windows.index).fillna(0.0) / window_s,
    )
    w = w[w["offered_load"].notna() & (w.index <= last)]
    if w.empty:
        return pd.DataFrame(columns=["stage", "offered_load", "start_at_s", "served_per_s", "dispatched_per_s"])
    bins = min(MAX_BINS, max(2, len(w) // MIN_BIN_WINDOWS))  # a level of one or two windows is noise
    if w["offered_load"].nunique() > bins:
        cut = pd.qcut(w["offered_load"], bins, duplicates="drop")
        w = w.assign(_bin=cut.cat.codes)
    else:
        w = w.assign(_bin=w["offered_load"])
    cols = [c for c in _MEAN_COLUMNS if c in w]
    grouped = w.groupby("_bin")
    out = grouped[[*cols, "offered_load", "dispatched_per_s", "served_per_s"]].mean()
    out["start_at_s"] = grouped["t_s"].min()
    out["end_at_s"] = grouped["t_s"].max() + window_s
    out["span_s"] = grouped.size() * window_s
    out["request_s"] = _shift_s(req)
    out = out.rename(
        columns={
            "kv_cache_usage": "kv_cache_usage_mean",
            "requests_waiting": "requests_waiting_mean",
            "requests_running": "requests_running_mean",
        }
    )
    out = out.reset_index(drop=True)
    out.insert(0, "stage", None)
    return out
