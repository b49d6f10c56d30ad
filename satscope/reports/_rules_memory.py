"""Bottleneck rules for what the scheduler can admit: the KV cache and the batch limit.

Both show as a waiting queue; they differ in whether the KV pool had room for another sequence.
"""

from __future__ import annotations

from typing import Any

from satscope.reports._evidence import (
    THRESHOLDS,
    Context,
    column,
    evidence_item,
    first_hold,
    hit,
    miss,
    sequence_share,
    stage_value,
)

__all__ = ["batch_limit_rule", "kv_cache_rule"]


def kv_cache_rule(ctx: Context) -> dict[str, Any]:
    """KV cache usage ≥ 95% (or too little free for one more sequence) with preemptions or a queue."""
    import numpy as np

    w = ctx.windows
    kv, pre, wait = column(w, "kv_cache_usage"), column(w, "preemptions_per_s"), column(w, "requests_waiting")
    if kv is None:
        return miss("kv_cache", "no kv_cache_usage samples")
    if pre is None and wait is None:
        return miss("kv_cache", "no preemption or queue samples to confirm the KV cache limited the batch")
    pressure = np.zeros(len(w), bool)
    if pre is not None:
        pressure |= np.nan_to_num(pre) > 0
    if wait is not None:
        pressure |= np.nan_to_num(wait) >= THRESHOLDS.requests_waiting
    full = np.nan_to_num(kv) >= THRESHOLDS.kv_cache_usage
    share = sequence_share(w)
    if share is not None and wait is not None:
        # block-granular pools are "full" below 95% when the free part cannot hold one more sequence
        full |= (np.nan_to_num(wait) >= THRESHOLDS.requests_waiting) & (1.0 - np.nan_to_num(kv) < share)
    pos = first_hold(full & pressure)
    if pos is None:
        return miss(
            "kv_cache",
            f"KV cache usage peaked at {np.nanmax(kv):.0%}, under "
            f"{THRESHOLDS.kv_cache_usage:.0%} with preemptions or a queue, with room for another sequence",
        )
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    rate = stage_value(ctx, stage, "preemptions_per_s")
    growth = stage_value(ctx, stage, "requests_waiting_growth_per_s")
    waiting = stage_value(ctx, stage, "requests_waiting_mean")
    ev = [
        evidence_item(
            "kv_cache_usage",
            kv[pos],
            THRESHOLDS.kv_cache_usage,
            ">=",
            t,
            stage,
            f"KV cache usage {kv[pos]:.0%} at {t:.1f} s",
        )
    ]
    parts = [f"KV cache full: usage {kv[pos]:.0%} at {t:.1f} s (stage {stage})"]
    if kv[pos] < THRESHOLDS.kv_cache_usage and share is not None:
        ev.append(
            evidence_item(
                "kv_cache_free",
                1.0 - kv[pos],
                share,
                "<",
                t,
                stage,
                f"free KV {1.0 - kv[pos]:.0%} is less than one sequence holds (about {share:.0%})",
            )
        )
        parts[0] += f", too little left for another sequence (one holds about {share:.0%})"
    if rate is not None and rate > 0:
        ev.append(
            evidence_item("preemptions_per_s", rate, 0.0, ">", t, stage, f"{rate:.2g} preemptions/s in stage {stage}")
        )
        parts.append(f"{rate:.2g} preemptions/s")
    if waiting is not None:
        ev.append(
            evidence_item(
                "requests_waiting",
                waiting,
                THRESHOLDS.requests_waiting,
                ">=",
                t,
                stage,
                f"{waiting:.1f} requests waiting on average in stage {stage}",
            )
        )
        parts.append(f"{waiting:.1f} requests waiting")
    if growth is not None:
        ev.append(_queue_growth(growth, t, stage))
    return hit("kv_cache", w, pos, parts[0] + (" with " + " and ".join(parts[1:]) if parts[1:] else ""), ev)


def batch_limit_rule(ctx: Context) -> dict[str, Any]:
    """A queue while the running batch sits at its most and KV cache and bandwidth have room.

    Without a KV gauge (llama.cpp slots) the batch pinned at its maximum with a queue behind it is
    the batch limit all the same; KV room is then unknown, not required.
    """
    import numpy as np

    w = ctx.windows
    run, wait, kv, bw = (
        column(w, m) for m in ("requests_running", "requests_waiting", "kv_cache_usage", "gpu_dram_bw_util")
    )
    if run is None or wait is None:
        return miss("batch_limit", "no requests_running / requests_waiting samples")
    cap = float(np.nanmax(run))
    if not cap >= 1:
        return miss("batch_limit", "no sequence was ever seen running")
    room = np.ones(len(w), bool)
    if kv is not None:
        room &= np.nan_to_num(kv, nan=1.0) < THRESHOLDS.kv_room
        share = sequence_share(w)
        if share is not None:  # room for at least two more sequences, not just a few free blocks
            room &= 1.0 - np.nan_to_num(kv, nan=1.0) >= 2.0 * share
    if bw is not None:
        room &= np.nan_to_num(bw, nan=1.0) < THRESHOLDS.bw_room
    mask = (
        (np.nan_to_num(wait) >= THRESHOLDS.requests_waiting)
        & (np.nan_to_num(run) >= THRESHOLDS.running_at_cap * cap)
        & room
    )
    pos = first_hold(mask)
    if pos is None:
        return miss(
            "batch_limit",
            "the queue never grew while the running batch sat at its maximum with KV cache and bandwidth to spare",
        )
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev = [
        evidence_item(
            "requests_running",
            run[pos],
            cap,
            ">=",
            t,
            stage,
            f"{run[pos]:.0f} sequences running (most seen: {cap:.0f})",
        ),
        evidence_item(
            "requests_waiting",
            wait[pos],
            THRESHOLDS.requests_waiting,
            ">=",
            t,
            stage,
            f"{wait[pos]:.1f} requests waiting at {t:.1f} s",
        ),
    ]
    text = (
        f"scheduler batch limit: the running batch stayed at {cap:.0f} sequences with {wait[pos]:.1f} "
        f"waiting at {t:.1f} s (stage {stage})"
    )
    if kv is not None:
        ev.append(
            evidence_item(
                "kv_cache_usage", kv[pos], THRESHOLDS.kv_room, "<", t, stage, f"KV cache usage only {kv[pos]:.0%}"
            )
        )
        text += f" while KV cache usage was {kv[pos]:.0%}"
    else:
        text += " (the server reports no KV cache usage, so KV room was not checked)"
    if bw is not None:
        ev.append(
            evidence_item(
                "gpu_dram_bw_util", bw[pos], THRESHOLDS.bw_room, "<", t, stage, f"DRAM bandwidth {bw[pos]:.0%}"
            )
        )
        text += f" and DRAM bandwidth {bw[pos]:.0%}"
    growth = stage_value(ctx, stage, "requests_waiting_growth_per_s")
    if growth is not None:
        ev.append(_queue_growth(growth, t, stage))
    return hit("batch_limit", w, pos, text, ev)


def _queue_growth(growth: float, t: float | None, stage: str | None) -> dict:
    """Evidence item: how fast the waiting queue grew in ``stage`` (least-squares slope)."""
    return evidence_item(
        "requests_waiting_growth_per_s",
        growth,
        0.0,
        ">",
        t,
        stage,
        f"waiting queue changing by {growth:+.2f} requests/s in stage {stage}",
    )
