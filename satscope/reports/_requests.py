"""Per-request figures derived from requests.parquet and tokens.parquet.

Every latency in the report comes from these rows (nothing is re-measured): TTFT, TTFO, E2E, each
from the actual and the intended send time, and inter-token gaps from the chunk arrival times.

TTFT is the first token of any kind, reasoning included (the server has finished the prompt);
TTFO the first *visible* one, content or a tool call (the user sees an answer begin). They differ
only for requests that streamed reasoning first; a request that spent its whole budget thinking
has a TTFT and no TTFO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["Gaps", "inter_token_gaps", "reasoning_counts", "request_frame"]


@dataclass(slots=True)
class Gaps:
    """Inter-token gaps: arrival time of the later chunk, the gap, and the request row."""

    t: np.ndarray
    gap_s: np.ndarray
    req: np.ndarray


def inter_token_gaps(run: RunData) -> Gaps:
    """All ``t[i] - t[i-1]`` within a request (tokens are sorted by request, then index)."""
    req = run.tokens["req"].to_numpy()
    t = run.tokens["t"].to_numpy()
    same = req[1:] == req[:-1]
    return Gaps(t=t[1:][same], gap_s=(t[1:] - t[:-1])[same], req=req[1:][same])


def request_frame(run: RunData) -> pd.DataFrame:
    """requests.parquet (with its ``ttft_s``, ``ttfo_s`` and their ``_intended_s`` forms) plus ``ok``,
    ``sent``, ``out_tokens``, ``reasoned`` and per-request mean ITL ``itl_mean_s``."""
    import numpy as np

    df = run.requests.copy()
    df["ok"] = (df["status"] == "ok").to_numpy()
    df["sent"] = (df["status"] != "dropped").to_numpy()
    # reasoned: the stream carried reasoning, or the server counted reasoning tokens it did not stream
    df["reasoned"] = (df["reasoning_chunks"].to_numpy() > 0) | (df["reasoning_tokens"].fillna(0).to_numpy() > 0)
    # usage is the server's count; chunks counted by the client stand in when usage is absent.
    out = df["output_tokens"].astype("float64").fillna(df["output_chunks"].astype("float64"))
    df["out_tokens"] = out.where(df["ok"], 0.0)
    df["in_tokens"] = df["prompt_tokens"].astype("float64").fillna(0.0).where(df["ok"], 0.0)
    itl = np.full(len(df), np.nan)
    tok = run.tokens
    if len(tok):
        req = tok["req"].to_numpy()
        t = tok["t"].to_numpy()
        starts = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])
        ends = np.r_[starts[1:], len(req)] - 1
        n = ends - starts
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_gap = np.where(n > 0, (t[ends] - t[starts]) / n, np.nan)
        itl[req[starts]] = mean_gap
    df["itl_mean_s"] = itl
    df["streamed_tokens"] = 0.0
    if len(tok):
        counts = np.bincount(tok["req"].to_numpy(), minlength=len(df)).astype(float)
        df["streamed_tokens"] = np.where(df["ok"], counts, 0.0)
    return df


def reasoning_counts(req: pd.DataFrame) -> tuple[int, int]:
    """``(reasoning requests, reasoning-only requests)`` among the ok ones: those that reasoned, and
    the streamed ones of them that carried nothing visible (they have no TTFO)."""
    reasoned = req["ok"] & req["reasoned"]
    return int(reasoned.sum()), int((reasoned & req["stream"] & req["first_visible_token"].isna()).sum())
