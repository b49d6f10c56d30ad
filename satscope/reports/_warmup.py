"""The warm-up: the first seconds of load, left out of every figure of the report.

``satscope run --warmup S`` records ``S`` in ``run.json`` (``config.report.warmup_s``);
``satscope report --warmup S`` overrides it, so an old run can be re-judged. The load starts at
the first stage's start (``run.json`` ``stages``; without them, the first intended send). A request
belongs to the warm-up when its *intended* send time falls in the first ``S`` seconds. Nothing is
written for it: the rows stay in ``requests.parquet`` as they were recorded, and
:func:`warmup_mask` flags them from the run's own files, the way a reader of the files can
(``intended_start < stages[0].start_s + warmup_s``). The analysis then drops those requests and
their tokens, the probe and load-generator samples taken before the warm-up's end, and starts every
stage at that end, so the windows, stages, percentiles, knee, goodput and gate never see them.

A request sent during the warm-up that finishes after it is left out whole, its late tokens
included: throughput in the first stage's first seconds counts only requests sent after the
warm-up (in a closed loop, about one request time's worth of completions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["Warmup", "clip_spans", "exclude_warmup", "load_start_at_s", "warmup_mask"]


@dataclass(slots=True, frozen=True)
class Warmup:
    """What the warm-up left out: its length, its end (elapsed run seconds) and the requests in it."""

    seconds: float
    end_at_s: float | None  # None: no warm-up
    requests: int


def load_start_at_s(run: RunData) -> float | None:
    """Elapsed run time at which the load began: the first stage's start, else the first intended send."""
    starts = [
        float(st["start_s"]) - run.origin_s
        for st in run.manifest.get("stages") or []
        if isinstance(st, dict) and isinstance(st.get("start_s"), int | float)
    ]
    if starts:
        return min(starts)
    if len(run.requests):
        return float(run.requests["intended_start"].min())
    return None


def warmup_mask(run: RunData, warmup_s: float) -> np.ndarray:
    """One bool per row of ``run.requests``: dispatched during the first ``warmup_s`` seconds of load."""
    import numpy as np

    start = load_start_at_s(run)
    if warmup_s <= 0 or start is None:
        return np.zeros(len(run.requests), dtype=bool)
    return run.requests["intended_start"].to_numpy(dtype=float) < start + warmup_s


def exclude_warmup(run: RunData, warmup_s: float) -> tuple[RunData, Warmup]:
    """``run`` without its warm-up (requests, their tokens, samples before its end), and what went."""
    import numpy as np

    if warmup_s < 0:
        raise ValueError("warmup_s must be >= 0")
    start = load_start_at_s(run)
    if warmup_s == 0 or start is None:
        return run, Warmup(warmup_s, None, 0)
    end = start + warmup_s
    warm = warmup_mask(run, warmup_s)
    keep = ~warm
    # tokens point at request rows by position: renumber them for the rows that stay
    new_row = np.cumsum(keep) - 1
    tok = run.tokens
    tok_keep = keep[tok["req"].to_numpy()] if len(tok) else np.zeros(0, dtype=bool)
    tokens = tok[tok_keep].reset_index(drop=True)
    tokens["req"] = new_row[tokens["req"].to_numpy()]
    loadgen = None if run.loadgen is None else run.loadgen[run.loadgen["t"] >= end].reset_index(drop=True)
    trimmed = dataclasses.replace(
        run,
        requests=run.requests[keep].reset_index(drop=True),
        tokens=tokens,
        samples=run.samples[run.samples["t"] >= end].reset_index(drop=True),
        loadgen=loadgen,
    )
    return trimmed, Warmup(warmup_s, end, int(warm.sum()))


def clip_spans(spans: pd.DataFrame, end_at_s: float | None) -> pd.DataFrame:
    """The stage spans starting no earlier than the warm-up's end; stages wholly inside it dropped."""
    import numpy as np

    if end_at_s is None or spans.empty:
        return spans
    out = spans[spans["end_at_s"] > end_at_s].copy()
    out["start_at_s"] = out["start_at_s"].clip(lower=end_at_s)
    out = out.reset_index(drop=True)
    out["index"] = np.arange(len(out))
    return out
