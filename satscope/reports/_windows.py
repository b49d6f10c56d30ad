"""The time-window table: one row per window (default 1 s) of the run.

Requests are placed in the window in which the figure happened: completions and E2E by `end`,
TTFT by `first_token`, ITL and streamed tokens by each chunk's arrival. Probe metrics are the
window means (``_samples.window_samples``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satscope.reports._measures import prompt_time
from satscope.reports._samples import window_samples
from satscope.reports._spans import stage_at
from satscope.reports._stats import group_percentiles

if TYPE_CHECKING:
    import pandas as pd

    from satscope.reports._load import RunData
    from satscope.reports._requests import Gaps

__all__ = ["window_table"]


def window_table(run: RunData, req: pd.DataFrame, gaps: Gaps, spans: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Index ``w`` (window number); ``t_s`` is the window start in elapsed run seconds."""
    import numpy as np
    import pandas as pd

    def win(t: object) -> np.ndarray:
        return np.floor(np.asarray(t, dtype=float) / window_s)

    end_w = win(req["end"])
    sent = req["sent"].to_numpy()
    ok = req["ok"].to_numpy()
    first_w = win(req["first_token"])
    # output tokens: streamed chunks when they exist (when they arrived), else usage at the end.
    tok_w = win(run.tokens["t"])[ok[run.tokens["req"].to_numpy()]] if len(run.tokens) else np.empty(0)
    unstreamed = ok & (req["streamed_tokens"].to_numpy() == 0)
    prompt_w = win(prompt_time(req))
    tables = [
        pd.Series(1.0, index=end_w[ok]).groupby(level=0).sum().rename("requests_per_s"),
        pd.Series(1.0, index=end_w[sent]).groupby(level=0).sum().rename("_ended"),
        pd.Series(1.0, index=end_w[sent & ~ok]).groupby(level=0).sum().rename("_failed"),
        pd.concat(
            [
                pd.Series(1.0, index=tok_w),
                pd.Series(req["out_tokens"].to_numpy()[unstreamed], index=end_w[unstreamed]),
            ]
        )
        .groupby(level=0)
        .sum()
        .rename("output_tokens_per_s"),
        pd.Series(req["in_tokens"].to_numpy()[ok], index=prompt_w[ok]).groupby(level=0).sum().rename("_prompt"),
        group_percentiles(first_w[ok], req["ttft_s"].to_numpy()[ok], "ttft"),
        group_percentiles(first_w[ok], req["ttft_intended_s"].to_numpy()[ok], "ttft_intended"),
        group_percentiles(end_w[ok], req["e2e_s"].to_numpy()[ok], "e2e"),
        group_percentiles(end_w[ok], req["e2e_intended_s"].to_numpy()[ok], "e2e_intended"),
        group_percentiles(win(gaps.t), gaps.gap_s, "itl"),
    ]
    probe = window_samples(run.samples, window_s)
    tables.append(probe)
    lo = [x.index.min() for x in tables if len(x)]
    hi = [x.index.max() for x in tables if len(x)]
    if not lo:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="w"))
    index = pd.RangeIndex(int(min(lo)), int(max(hi)) + 1, name="w")
    frame = pd.concat([x.reindex(index) for x in tables if len(x)], axis=1)
    for col in ("requests_per_s", "output_tokens_per_s", "_ended", "_failed", "_prompt"):
        frame[col] = frame[col].fillna(0.0) if col in frame else 0.0
    frame["requests_per_s"] /= window_s
    frame["output_tokens_per_s"] /= window_s
    frame["total_tokens_per_s"] = frame["output_tokens_per_s"] + frame["_prompt"] / window_s
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["error_rate"] = np.where(frame["_ended"] > 0, frame["_failed"] / frame["_ended"], np.nan)
    frame = frame.drop(columns=["_ended", "_failed", "_prompt"])
    frame.insert(0, "t_s", frame.index.to_numpy() * window_s)
    # the stage running mid-window, else at either edge (a window that straddles a stage boundary)
    t_s = frame["t_s"].to_numpy()
    pos = stage_at(spans, t_s + window_s / 2)
    for edge in (t_s + window_s * 0.999, t_s):
        pos = np.where(pos >= 0, pos, stage_at(spans, edge))
    names = spans["stage"].to_numpy() if len(spans) else np.array([], dtype=object)
    loads = spans["offered_load"].to_numpy() if len(spans) else np.array([])
    frame.insert(1, "stage", pd.Series([names[p] if p >= 0 else None for p in pos], index=frame.index, dtype=object))
    frame.insert(2, "offered_load", [loads[p] if p >= 0 else np.nan for p in pos])
    return frame
