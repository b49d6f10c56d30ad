"""The shared vocabulary of the bottleneck rules: thresholds, the context they read, evidence items.

A rule looks at the time windows; its condition *holds* when true for ``MIN_WINDOWS`` windows in a
row, and what it found is a candidate: ``hit`` with a sentence and evidence, or ``miss`` with why not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satscope.reports._stats import clean
from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LABELS",
    "MIN_WINDOWS",
    "PRIORITY",
    "THRESHOLDS",
    "Context",
    "column",
    "evidence_item",
    "first_hold",
    "flat_evidence",
    "flat_mask",
    "hit",
    "miss",
    "sequence_share",
    "stage_value",
]

LABELS = {
    "prefix_cache": "prefix cache (shared prefixes evicted)",
    "kv_cache": "KV cache",
    "memory_bandwidth": "memory bandwidth",
    "compute": "compute",
    "batch_limit": "scheduler batch limit",
    "client": "client (load generator)",
    "errors": "errors",
    "none": "none",
    "unknown": "unknown",
}
# prefix_cache before kv_cache: the same full pool, named by what it cost (satscope.reports._bottleneck)
PRIORITY = ("client", "prefix_cache", "kv_cache", "batch_limit", "memory_bandwidth", "compute", "errors")
MIN_WINDOWS = THRESHOLDS.min_windows


@dataclass(slots=True)
class Context:
    """What the rules look at."""

    windows: pd.DataFrame
    stages: pd.DataFrame
    manifest: dict[str, Any]
    knee_found: bool
    saturation_at_s: float | None
    knee_efficiency: float | None
    top_error: str | None = None
    client: dict[str, Any] | None = None  # the client candidate (satscope.reports._client)
    has_probe_data: bool = True


def evidence_item(metric: str, value: Any, threshold: Any, op: str, at_s: Any, stage: Any, text: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": clean(value),
        "threshold": clean(threshold),
        "op": op,
        "at_s": clean(at_s),
        "stage": stage,
        "text": text,
    }


def first_hold(mask: Any) -> int | None:
    import numpy as np

    m = np.asarray(mask, dtype=bool)
    need = min(MIN_WINDOWS, len(m))
    if need == 0:
        return None
    run = np.convolve(m.astype(int), np.ones(need, dtype=int), mode="valid")
    hits = np.flatnonzero(run >= need)
    return int(hits[0]) if len(hits) else None


def column(w: pd.DataFrame, name: str) -> Any:
    return w[name].to_numpy(dtype=float) if name in w and w[name].notna().any() else None


def miss(kind: str, reason: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "label": LABELS[kind],
        "hit": False,
        "at_s": None,
        "stage": None,
        "sentence": None,
        "evidence": [],
        "reason_not": reason,
    }


def hit(kind: str, w: pd.DataFrame, pos: int, sentence: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    row = w.iloc[pos]
    return {
        "kind": kind,
        "label": LABELS[kind],
        "hit": True,
        "at_s": clean(row["t_s"]),
        "stage": row["stage"],
        "sentence": sentence,
        "evidence": evidence,
        "reason_not": None,
    }


def stage_value(ctx: Context, stage: Any, col: str) -> Any:
    s = ctx.stages
    if stage is None or s.empty or col not in s:
        return None
    match = s.loc[s["stage"] == stage, col]
    return clean(match.iloc[0]) if len(match) else None


def sequence_share(w: pd.DataFrame) -> float | None:
    """Median share of the KV pool one running sequence holds (usage ÷ running), or None."""
    import numpy as np

    kv, run = column(w, "kv_cache_usage"), column(w, "requests_running")
    if kv is None or run is None:
        return None
    ok = np.isfinite(kv) & np.isfinite(run) & (run >= 1) & (kv > 0)
    return float(np.median(kv[ok] / run[ok])) if ok.any() else None


def flat_mask(ctx: Context) -> Any:
    import numpy as np

    t = ctx.windows["t_s"].to_numpy(dtype=float)
    if not ctx.knee_found or ctx.saturation_at_s is None:
        return np.zeros(len(t), bool)
    return t >= ctx.saturation_at_s - 1e-9


def flat_evidence(ctx: Context, t: float, stage: Any) -> dict[str, Any]:
    eff = ctx.knee_efficiency
    return evidence_item(
        "scaling_efficiency",
        eff,
        THRESHOLDS.min_efficiency,
        "<",
        t,
        stage,
        f"tokens/s flat past the saturation point (scaling efficiency {eff:.2f} at the knee)"
        if eff is not None
        else "tokens/s flat past the saturation point",
    )
