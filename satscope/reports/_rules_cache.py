"""Bottleneck rule for the prefix cache: shared prefixes evicted as the load rises.

A server with prefix caching keeps the KV blocks of prompts it has computed and serves a later
prompt that starts the same way from them, skipping that part of its prefill. Cached blocks that no
running sequence holds live in the free part of the KV pool, so when running sequences take the
pool they are evicted first: the hit rate falls just as the load is highest, every request prefills
more, and TTFT climbs. The rule compares load levels (hold stages): a level's hit rate against the
best at a lower load, with the KV pool at its limit and the prefill work and TTFT up. The same full
pool is the `kv_cache` wall; this names what it cost (``satscope.reports._bottleneck`` gives this kind the
place of `kv_cache` when both hold).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._evidence import (
    MIN_WINDOWS,
    THRESHOLDS,
    Context,
    column,
    evidence_item,
    hit,
    miss,
    sequence_share,
)
from satscope.reports._saturation import round_load

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["prefix_cache_rule"]

KIND = "prefix_cache"


def _levels(ctx: Context) -> pd.DataFrame:
    """Hold stages with a prefix-cache hit rate in ``MIN_WINDOWS`` windows or more, by load."""
    s, w = ctx.stages, ctx.windows
    need = ("stage", "offered_load", "prefix_cache_hit_rate_mean", "kv_cache_usage_max")
    if s.empty or any(c not in s for c in need):
        return s.iloc[0:0]
    sampled = w.loc[w["prefix_cache_hit_rate"].notna(), "stage"].value_counts()
    keep = s["offered_load"].notna() & s["prefix_cache_hit_rate_mean"].notna()
    keep &= s["stage"].map(sampled).fillna(0) >= MIN_WINDOWS
    if "profile" in s:
        keep &= s["profile"].fillna("hold") == "hold"
    return s[keep].sort_values("offered_load", kind="stable")


def _value(row: Any, col: str) -> float | None:
    import math

    v = row.get(col)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _name(row: Any) -> str:
    unit = "req/s" if row.get("kind") == "open" else "users"
    return f"{round_load(float(row['offered_load'])):g} {unit} (stage {row['stage']})"


def _full(kv: Any, waiting: Any, share: float | None) -> Any:
    """KV full: ≥ `kv_cache_usage`, or, in a block-granular pool, a queue while the free part could
    not hold one more sequence (the `kv_cache` rule's two readings of a full pool)."""
    import numpy as np

    kv, waiting = np.nan_to_num(np.asarray(kv, dtype=float)), np.nan_to_num(np.asarray(waiting, dtype=float))
    room = share if share is not None else 0.0
    return (kv >= THRESHOLDS.kv_cache_usage) | ((waiting >= THRESHOLDS.requests_waiting) & (1.0 - kv < room))


def _at_limit(kv_mean: float | None, kv_max: float | None, waiting: float | None, share: float | None) -> bool:
    """A level's KV at its limit: high on average, or full in one of its windows. The server's gauge
    is read between steps, after the finished sequences let their blocks go, so even a pinned pool
    averages under its peaks."""
    if kv_mean is not None and kv_mean >= THRESHOLDS.prefix_cache_kv_usage:
        return True
    return kv_max is not None and bool(_full(kv_max, waiting or 0.0, share))


def _judge(ref: Any, lvl: Any, share: float | None) -> tuple[list[str], dict[str, Any]]:
    """What failed (empty: the rule holds) at level ``lvl`` against ``ref``, and the figures."""
    t = THRESHOLDS
    f: dict[str, Any] = {
        "hit_ref": float(ref["prefix_cache_hit_rate_mean"]),
        "hit": float(lvl["prefix_cache_hit_rate_mean"]),
        "kv": _value(lvl, "kv_cache_usage_max"),
        "kv_mean": _value(lvl, "kv_cache_usage_mean"),
        "prefill_ref": _value(ref, "prefill_tokens_per_s"),
        "prefill": _value(lvl, "prefill_tokens_per_s"),
        "ttft_ref": _value(ref, "ttft_p99_s"),
        "ttft": _value(lvl, "ttft_p99_s"),
    }
    failed = []
    if f["hit"] > t.prefix_cache_hit_fall * f["hit_ref"]:
        failed.append("the hit rate held")
    if not _at_limit(f["kv_mean"], f["kv"], _value(lvl, "requests_waiting_mean"), share):
        kv = "unknown" if f["kv"] is None else f"{f['kv_mean']:.0%} on average, at most {f['kv']:.0%}"
        failed.append(f"KV cache usage was {kv} there, with room for another sequence")
    has_prefill = f["prefill"] is not None and f["prefill_ref"] is not None and f["prefill_ref"] > 0
    has_ttft = f["ttft"] is not None and f["ttft_ref"] is not None
    if not has_prefill and not has_ttft:
        failed.append("no prefill or TTFT figures show what it cost")
    if has_prefill and f["prefill"] < t.prefill_rise * f["prefill_ref"]:
        failed.append(f"prefill tokens/s rose only {f['prefill'] / f['prefill_ref']:.2g}×")
    if has_ttft and (
        f["ttft"] < t.min_latency_rise * f["ttft_ref"] or f["ttft"] - f["ttft_ref"] < t.min_latency_rise_s
    ):
        failed.append(f"TTFT p99 did not climb ({f['ttft_ref']:.3g} → {f['ttft']:.3g} s)")
    f["has_prefill"], f["has_ttft"] = has_prefill, has_ttft
    return failed, f


def prefix_cache_rule(ctx: Context) -> dict[str, Any]:
    """The prefix-cache hit rate fell as load rose, with KV at its limit and prefill and TTFT up."""
    t = THRESHOLDS
    if column(ctx.windows, "prefix_cache_hit_rate") is None:
        return miss(KIND, "no prefix_cache_hit_rate samples (the server reports no prefix-cache figures)")
    if column(ctx.windows, "kv_cache_usage") is None:
        return miss(KIND, "no kv_cache_usage samples to tell whether running sequences took the pool")
    lv = _levels(ctx)
    share = sequence_share(ctx.windows)
    if len(lv) < 2:
        return miss(KIND, "needs two or more load levels (hold stages) with prefix-cache samples")
    # a reference is a level without preemptions: a preempted sequence readmitted finds its own
    # blocks in the cache, which is no reuse by the workload
    rows = [r for _, r in lv.iterrows()]
    calm = [(_value(r, "preemptions_per_s") or 0.0) < t.preemptions_per_s for r in rows]
    best = max((float(r["prefix_cache_hit_rate_mean"]) for r, ok in zip(rows, calm, strict=True) if ok), default=0.0)
    if best < t.prefix_cache_reuse:
        reason = f"no prefix reuse to lose: the hit rate was at most {best:.0%} at every level without preemptions"
        return miss(KIND, f"{reason} (under {t.prefix_cache_reuse:.0%})")
    closest: tuple[float, str] | None = None
    for j, lvl in enumerate(rows):
        lower = [r for r, ok in zip(rows[:j], calm, strict=False) if ok and r["offered_load"] < lvl["offered_load"]]
        if not lower:
            continue
        # the best hit rate below it; of equals, the nearest load
        ref = max(lower, key=lambda r: (float(r["prefix_cache_hit_rate_mean"]), float(r["offered_load"])))
        if float(ref["prefix_cache_hit_rate_mean"]) < t.prefix_cache_reuse:
            continue
        failed, f = _judge(ref, lvl, share)
        if not failed:
            return _found(ctx, ref, lvl, f, share)
        ratio = f["hit"] / f["hit_ref"]
        if closest is None or ratio < closest[0]:
            text = (
                f"the hit rate held: {f['hit']:.0%} at {_name(lvl)} against {f['hit_ref']:.0%} at {_name(ref)}"
                if failed[0] == "the hit rate held"
                else f"the hit rate fell from {f['hit_ref']:.0%} at {_name(ref)} to {f['hit']:.0%} at "
                f"{_name(lvl)}, but " + "; ".join(failed)
            )
            closest = (ratio, text)
    return miss(KIND, closest[1] if closest else "no level had a lower load with prefix reuse to compare with")


def _found(ctx: Context, ref: Any, lvl: Any, f: dict[str, Any], share: float | None) -> dict[str, Any]:
    import numpy as np

    t = THRESHOLDS
    w = ctx.windows
    stage = lvl["stage"]
    in_stage = np.flatnonzero((w["stage"] == stage).to_numpy())
    waiting = w["requests_waiting"] if "requests_waiting" in w else np.zeros(len(w))
    kv = w["kv_cache_usage"].to_numpy(dtype=float)[in_stage]
    full = in_stage[(np.nan_to_num(kv) >= t.prefix_cache_kv_usage) | _full(kv, np.asarray(waiting)[in_stage], share)]
    pos = int(full[0]) if len(full) else int(in_stage[0])  # the level holds from when its pool filled
    at = float(w["t_s"].iloc[pos])
    ev = [
        evidence_item(
            "prefix_cache_hit_rate",
            f["hit"],
            t.prefix_cache_hit_fall * f["hit_ref"],
            "<=",
            at,
            stage,
            f"prefix-cache hit rate {f['hit']:.0%} at {_name(lvl)} against {f['hit_ref']:.0%} at {_name(ref)}",
        ),
        evidence_item(
            "kv_cache_usage",
            *(
                (f["kv_mean"], t.prefix_cache_kv_usage)  # the level's mean, or its fullest window
                if f["kv_mean"] is not None and f["kv_mean"] >= t.prefix_cache_kv_usage
                else (f["kv"], t.kv_cache_usage if f["kv"] >= t.kv_cache_usage or share is None else 1.0 - share)
            ),
            ">=",
            at,
            stage,
            f"KV cache usage {f['kv_mean']:.0%} on average in stage {stage}, up to {f['kv']:.0%}: running "
            "sequences held the pool, so the cached prefixes none of them held were evicted",
        ),
    ]
    text = (
        f"prefix-cache eviction: hit rate fell from {f['hit_ref']:.0%} at {_name(ref)} "
        f"to {f['hit']:.0%} at {_name(lvl)}"
    )
    cost = []
    if f["has_prefill"]:
        rise = f["prefill"] / f["prefill_ref"]
        ev.append(
            evidence_item(
                "prefill_tokens_per_s",
                f["prefill"],
                t.prefill_rise * f["prefill_ref"],
                ">=",
                at,
                stage,
                f"prefill {f['prefill']:.0f} tokens/s against {f['prefill_ref']:.0f} ({rise:.1f}×)",
            )
        )
        cost.append(f"prefill tokens/s rose {rise:.1f}×")
    if f["has_ttft"]:
        ev.append(
            evidence_item(
                "ttft_p99_s",
                f["ttft"],
                max(t.min_latency_rise * f["ttft_ref"], f["ttft_ref"] + t.min_latency_rise_s),
                ">=",
                at,
                stage,
                f"TTFT p99 {f['ttft']:.3g} s against {f['ttft_ref']:.3g} s",
            )
        )
        cost.append(f"TTFT p99 {f['ttft_ref']:.3g} → {f['ttft']:.3g} s")
    text += " while " + " and ".join(cost) + f"; KV cache usage {f['kv_mean']:.0%} on average, up to {f['kv']:.0%}"
    ev += _client_evidence(ref, lvl, at)
    if ev[-1]["metric"] == "prompt_tokens_cached_share" and ev[-1]["op"] == "<":
        text += f"; the answers reported {ev[-1]['threshold']:.0%} → {ev[-1]['value']:.0%} of prompt tokens cached"
    return hit(KIND, w, pos, text, ev)


def _client_evidence(ref: Any, lvl: Any, at: float) -> list[dict[str, Any]]:
    """The answers' own cached-token counts (usage.prompt_tokens_details), when the server sent them."""
    now, before = _value(lvl, "prompt_tokens_cached_share"), _value(ref, "prompt_tokens_cached_share")
    if now is None or before is None:
        return []
    fell = now < before
    text = f"the answers reported {before:.0%} → {now:.0%} of prompt tokens cached"
    text += "" if fell else " (no fall there: the server's own counters decide)"
    return [evidence_item("prompt_tokens_cached_share", now, before, "<" if fell else ">=", at, lvl["stage"], text)]
