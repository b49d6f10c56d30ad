"""How closely a trace replay (``--dataset-format mooncake``) kept to the trace's schedule.

Each request of a replay has the trace's time (after ``--speedup``) as its ``intended_start``; the
lateness of a dispatch is ``start - intended_start``, when it was actually sent against when the
trace says. Late dispatches make the replay a different workload (bursts smeared), so the report
states their percentiles; latencies from the intended start include them either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._stats import distribution

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["replay_block"]

_LATE_THRESHOLD_S = 0.005  # the load generator's default (run.json config.late_threshold_s)


def replay_block(req: pd.DataFrame, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``replay`` block of summary.json; None unless the run replayed a trace. ``config`` is
    run.json's ``config``; ``req`` the request frame (``satscope/reports/_requests.py``)."""
    workload = (config or {}).get("workload") or {}
    replayed = workload.get("dataset_format") == "mooncake" or workload.get("fixed_schedule")
    if not replayed or not workload.get("dataset"):
        return None
    threshold = float((config or {}).get("late_threshold_s") or _LATE_THRESHOLD_S)
    sent = req[req["sent"]]
    lateness = (sent["start"] - sent["intended_start"]).to_numpy(dtype=float)
    span = float(req["intended_start"].max() - req["intended_start"].min()) if len(req) else 0.0
    return {
        "trace": workload["dataset"],
        "speedup": float(workload.get("speedup") or 1.0),
        "trace_block_tokens": int(workload.get("trace_block_tokens") or 512),
        "requests": len(req),
        "requests_dropped": int((~req["sent"]).sum()),
        "schedule_span_s": span,
        "dispatch_lateness_s": distribution(lateness),
        "late_threshold_s": threshold,
        "late_dispatches": int((lateness > threshold).sum()),
    }
