"""The stages of a run as time spans with their offered load, from run.json or the requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["load_kind", "stage_at", "stage_spans"]


def stage_spans(run: RunData) -> pd.DataFrame:
    """Columns: stage, index, kind, profile, offered_load, start_at_s, end_at_s (elapsed run seconds).

    run.json's stages are the truth; a run without them (or a stage missing from them) gets the
    span over which its requests were dispatched and the median offered load they carried.
    """
    import numpy as np
    import pandas as pd

    rows = []
    for st in run.manifest.get("stages") or []:
        if not isinstance(st, dict) or st.get("start_s") is None:
            continue
        kind = st.get("kind")
        load = st.get("rate_rps") if kind == "open" else st.get("users")
        if load is None:
            load = st.get("users") if st.get("users") is not None else st.get("rate_rps")
        end = st.get("end_s")
        rows.append(
            {
                "stage": str(st.get("name")),
                "kind": kind,
                "profile": st.get("profile"),
                "offered_load": float(load) if load is not None else np.nan,
                "start_at_s": float(st["start_s"]) - run.origin_s,
                "end_at_s": float(end) - run.origin_s if end is not None else np.nan,
            }
        )
    known = {r["stage"] for r in rows}
    req = run.requests
    by_stage = req.groupby("stage", sort=False, observed=True)
    for name, grp in by_stage:
        if str(name) in known:
            continue
        rows.append(
            {
                "stage": str(name),
                "kind": None,
                "profile": None,
                "offered_load": float(grp["offered_load"].median()),
                "start_at_s": float(grp["intended_start"].min()),
                "end_at_s": float(grp["intended_start"].max()),
            }
        )
    spans = pd.DataFrame(rows, columns=["stage", "kind", "profile", "offered_load", "start_at_s", "end_at_s"])
    if spans.empty:
        spans["index"] = pd.Series(dtype="int64")
        return spans
    # a stage without an end (the run was cut) ends at the last request it dispatched.
    last = by_stage["end"].max()
    spans["end_at_s"] = (
        spans["end_at_s"].astype(float).fillna(spans["stage"].map(last).astype(float)).fillna(spans["start_at_s"])
    )
    spans["offered_load"] = (
        spans["offered_load"].astype(float).fillna(spans["stage"].map(by_stage["offered_load"].median()).astype(float))
    )
    # a stage without a profile (older run.json, or none at all) holds when its requests carried one load
    varied = by_stage["offered_load"].nunique() > 1
    spans["profile"] = spans["profile"].fillna(spans["stage"].map(varied).map({True: "varied", False: "hold"}))
    spans["profile"] = spans["profile"].fillna("hold")
    spans = spans.sort_values("start_at_s", kind="stable").reset_index(drop=True)
    spans["index"] = np.arange(len(spans))
    return spans


def stage_at(spans: pd.DataFrame, t: np.ndarray | float) -> np.ndarray:
    """Row position in ``spans`` of the stage running at each time in ``t`` (-1 outside all)."""
    import numpy as np

    times = np.asarray(t, dtype=float)
    if spans.empty:
        return np.full(times.shape, -1)
    starts = spans["start_at_s"].to_numpy()
    ends = spans["end_at_s"].to_numpy()
    pos = np.searchsorted(starts, times, side="right") - 1
    inside = (pos >= 0) & (times < ends[np.clip(pos, 0, None)] + 1e-9)
    return np.where(inside, pos, -1)


def load_kind(spans: pd.DataFrame) -> str:
    """``users`` (closed loop), ``rate_rps`` (open loop) or ``mixed``."""
    kinds = {k for k in spans["kind"].dropna().unique()} if len(spans) else set()
    if kinds == {"open"}:
        return "rate_rps"
    if kinds <= {"closed"}:
        return "users"
    return "mixed"
