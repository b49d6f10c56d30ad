"""Which resource hit its limit first, and the numbers that show it (rules in docs/reports.md).

Each kind has a condition over the time windows; it *holds* when it is true for
``MIN_WINDOWS`` windows in a row. The verdict is the kind that held first (ties go by
``PRIORITY``); `prefix_cache` (a comparison of load levels) is the `kv_cache` wall named by what
it cost, shared prefixes evicted, so when both hold it takes `kv_cache`'s place at the earlier of
their times. A load generator that could not keep up (``satscope.reports._client``) is the verdict only
when no server-side rule held: clear server evidence is never overridden by the client. Bandwidth
and compute also need throughput to be flat — the window must be at or after the saturation
point, with a knee found.
"""

from __future__ import annotations

from typing import Any

from satscope.reports._evidence import (
    LABELS,
    PRIORITY,
    THRESHOLDS,
    Context,
    column,
    evidence_item,
    first_hold,
    hit,
    miss,
    stage_value,
)
from satscope.reports._rules_cache import prefix_cache_rule
from satscope.reports._rules_hardware import compute_rule, memory_bandwidth_rule
from satscope.reports._rules_memory import batch_limit_rule, kv_cache_rule

__all__ = ["LABELS", "THRESHOLDS", "Context", "attribute"]


def _errors(ctx: Context) -> dict[str, Any]:
    """Error rate ≥ 5% in a window."""
    import numpy as np

    w = ctx.windows
    rate = column(w, "error_rate")
    if rate is None:
        return miss("errors", "no requests ended")
    pos = first_hold(np.nan_to_num(rate) >= THRESHOLDS.error_rate)
    if pos is None:
        return miss("errors", f"error rate stayed under {THRESHOLDS.error_rate:.0%}")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    stage_rate = stage_value(ctx, stage, "error_rate")
    shown = stage_rate if stage_rate is not None else rate[pos]
    text = f"errors: {shown:.0%} of requests failed in stage {stage} (from {t:.1f} s)"
    if ctx.top_error:
        text += f", most often: {ctx.top_error[:200]}"
    ev = [
        evidence_item(
            "error_rate", shown, THRESHOLDS.error_rate, ">=", t, stage, f"error rate {shown:.0%} in stage {stage}"
        )
    ]
    return hit("errors", w, pos, text, ev)


def _first(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """The kind that held first (ties by ``PRIORITY``); `prefix_cache` stands for `kv_cache`."""
    by_kind = {c["kind"]: c for c in hits}
    prefix, kv = by_kind.get("prefix_cache"), by_kind.get("kv_cache")

    def when(c: dict[str, Any]) -> tuple[float, int]:
        times = [c["at_s"]] + ([kv["at_s"]] if c is prefix and kv is not None else [])
        known = [x for x in times if x is not None]
        return (min(known) if known else float("inf"), PRIORITY.index(c["kind"]))

    return min((c for c in hits if not (c is kv and prefix is not None)), key=when)


def attribute(ctx: Context) -> dict[str, Any]:
    """The `bottleneck` block of summary.json."""
    checks = [
        ctx.client or miss("client", "the client was not judged"),
        prefix_cache_rule(ctx),
        kv_cache_rule(ctx),
        batch_limit_rule(ctx),
        memory_bandwidth_rule(ctx),
        compute_rule(ctx),
        _errors(ctx),
    ]
    hits = [c for c in checks[1:] if c["hit"]]
    if checks[0]["hit"] and not hits:
        best = checks[0]
    elif hits:
        best = _first(hits)
    else:
        kind = "unknown" if ctx.knee_found else "none"
        sentence = (
            "throughput flattened but no probe metric reached its limit"
            if ctx.knee_found
            else "no resource reached its limit"
        )
        if ctx.knee_found and not ctx.has_probe_data:
            sentence += " (the run has no probe data to tell why)"
        best = {
            "kind": kind,
            "label": LABELS[kind],
            "hit": False,
            "at_s": None,
            "stage": None,
            "sentence": sentence,
            "evidence": [],
        }
    return {
        "kind": best["kind"],
        "label": best["label"],
        "stage": best["stage"],
        "at_s": best["at_s"],
        "sentence": best["sentence"],
        "evidence": best["evidence"],
        "candidates": checks,
    }
