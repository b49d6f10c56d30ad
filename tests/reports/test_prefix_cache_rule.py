"""The prefix-cache rule on hand-made levels: a hit rate that falls as load rises, with KV at its
limit and prefill and TTFT up, is named with its figures; reuse that never was, a hit rate that held,
a pool with room, a cost that did not show, or missing figures are not; and against `kv_cache` it is
the more specific name for the same full pool, never a way past an earlier wall."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from satscope.reports._bottleneck import attribute
from satscope.reports._evidence import Context
from satscope.reports._rules_cache import prefix_cache_rule
from satscope.reports._thresholds import THRESHOLDS

WINDOWS = 5  # per level, 1 s each


def level(
    load: float, hit: float, kv: float | list[float], prefill: float | None, ttft: float | None, **kw: Any
) -> dict:
    return {"load": load, "hit": hit, "kv": kv, "prefill": prefill, "ttft": ttft} | kw


# cold at 4 users, warm at 10, then the pool fills and the hit rate falls (the bundled server's figures)
COLD, WARM = level(4, 0.35, 0.2, 500, 0.10), level(10, 0.60, 0.4, 800, 0.12, cached=0.6)
HALF = level(16, 0.50, 0.65, 1400, 0.13)
WALL = level(22, 0.30, [0.7, 0.75, 0.9, 0.95, 0.99], 2200, 0.40, cached=0.3, waiting=3.0)
TOP = level(28, 0.30, 0.9, 2300, 0.50, waiting=9.0)
EVICTION = [COLD, WARM, HALF, WALL, TOP]


def context(levels: list[dict], drop: tuple[str, ...] = ()) -> Context:
    """Windows and the stage table of ``levels`` (each ``WINDOWS`` windows), figures as given."""
    windows, stages = [], []
    for i, lv in enumerate(levels):
        kv = lv["kv"] if isinstance(lv["kv"], list) else [lv["kv"]] * WINDOWS
        running = lv.get("running", [lv["load"]] * WINDOWS)
        waiting = lv.get("waiting_w", [lv.get("waiting", 0.0)] * WINDOWS)
        start = i * WINDOWS
        for k in range(WINDOWS):
            windows.append(
                {
                    "t_s": float(start + k),
                    "stage": f"L{i}",
                    "offered_load": float(lv["load"]),
                    "prefix_cache_hit_rate": lv["hit"],
                    "kv_cache_usage": kv[k],
                    "requests_running": float(running[k]),
                    "requests_waiting": float(waiting[k]),
                    "error_rate": 0.0,
                }
            )
        stages.append(
            {
                "stage": f"L{i}",
                "index": i,
                "kind": lv.get("kind", "closed"),
                "profile": lv.get("profile", "hold"),
                "offered_load": float(lv["load"]),
                "start_at_s": float(start),
                "end_at_s": float(start + WINDOWS),
                "prefix_cache_hit_rate_mean": lv["hit"],
                "kv_cache_usage_mean": sum(kv) / len(kv),
                "kv_cache_usage_max": max(kv),
                "requests_waiting_mean": sum(waiting) / len(waiting),
                "prefill_tokens_per_s": lv["prefill"],
                "ttft_p99_s": lv["ttft"],
                "prompt_tokens_cached_share": lv.get("cached"),
                "preemptions_per_s": lv.get("preemptions", 0.0),
            }
        )
    w, s = pd.DataFrame(windows), pd.DataFrame(stages).astype({"prefill_tokens_per_s": float, "ttft_p99_s": float})
    w, s = w.drop(columns=[c for c in drop if c in w]), s.drop(columns=[c for c in drop if c in s])
    return Context(w, s, {}, knee_found=True, saturation_at_s=3.0 * WINDOWS, knee_efficiency=0.3)


def test_eviction_is_named_with_its_figures() -> None:
    c = prefix_cache_rule(context(EVICTION))
    assert c["hit"], c["reason_not"]
    assert c["stage"] == "L3"  # the first level past the wall, compared with the best below it (not the cold one)
    assert c["at_s"] == 3 * WINDOWS + 2  # its first window with KV at the rule's limit
    assert c["sentence"].startswith("prefix-cache eviction: hit rate fell from 60% at 10 users (stage L1) to 30% at 22")
    assert f"prefill tokens/s rose {2200 / 800:.1f}×" in c["sentence"]
    assert "TTFT p99 0.12 → 0.4 s" in c["sentence"] and "the answers reported 60% → 30%" in c["sentence"]
    ev = {e["metric"]: e for e in c["evidence"]}
    assert ev["prefix_cache_hit_rate"]["threshold"] == pytest.approx(THRESHOLDS.prefix_cache_hit_fall * 0.6)
    assert ev["prefill_tokens_per_s"]["value"] == 2200 and ev["prompt_tokens_cached_share"]["op"] == "<"
    assert ev["kv_cache_usage"]["value"] == pytest.approx(sum(WALL["kv"]) / WINDOWS)


def test_no_prefix_reuse_never_fires() -> None:
    flat = [lv | {"hit": 0.02 * (i % 2)} for i, lv in enumerate(EVICTION)]
    c = prefix_cache_rule(context(flat))
    assert not c["hit"] and c["reason_not"].startswith("no prefix reuse to lose: the hit rate was at most 2%")


def test_a_preempted_sequence_finding_its_own_blocks_is_no_reuse() -> None:
    # readmitted after preemption, a sequence finds its own blocks: a hit rate, but not the workload's
    readmitted = [COLD | {"hit": 0.05}, WARM | {"preemptions": 2.0}, WALL | {"hit": 0.1, "preemptions": 3.0}]
    c = prefix_cache_rule(context(readmitted))
    assert not c["hit"] and "at most 5% at every level without preemptions" in c["reason_not"]
    # the reference is the best level that did not preempt, not a higher one that did
    c = prefix_cache_rule(context([WARM, HALF | {"hit": 0.9, "preemptions": 2.0}, WALL]))
    assert c["hit"] and "fell from 60% at 10 users (stage L0)" in c["sentence"]


def test_a_hit_rate_that_held_is_not_eviction() -> None:
    held = [lv | {"hit": 0.6} for lv in EVICTION]
    c = prefix_cache_rule(context(held))
    assert not c["hit"] and c["reason_not"].startswith("the hit rate held")


def test_a_rising_hit_rate_from_a_cold_cache_is_not_eviction() -> None:
    warming = [lv | {"hit": 0.1 + 0.1 * i} for i, lv in enumerate(EVICTION)]
    assert not prefix_cache_rule(context(warming))["hit"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kv": 0.5}, "KV cache usage was 50% on average, at most 50% there"),
        ({"prefill": 800 * THRESHOLDS.prefill_rise * 0.95}, "prefill tokens/s rose only"),
        ({"ttft": 0.125}, "TTFT p99 did not climb (0.12 → 0.125 s)"),
        ({"prefill": None, "ttft": None}, "no prefill or TTFT figures show what it cost"),
    ],
)
def test_a_fall_without_a_full_pool_or_a_cost_is_not_eviction(change: dict, why: str) -> None:
    levels = [COLD, WARM, HALF, WALL | change, TOP | change]
    c = prefix_cache_rule(context(levels))
    assert not c["hit"]
    assert c["reason_not"].startswith("the hit rate fell from 60% at 10 users (stage L1) to 30% at 22")
    assert why in c["reason_not"]


def test_either_cost_alone_is_enough_when_the_other_is_not_measured() -> None:
    no_prefill = [lv | {"prefill": None} for lv in EVICTION]
    no_ttft = [lv | {"ttft": None} for lv in EVICTION]
    assert "prefill" not in prefix_cache_rule(context(no_prefill))["sentence"]
    assert "TTFT" not in prefix_cache_rule(context(no_ttft))["sentence"]


def test_thresholds_are_the_ones_in_thresholds() -> None:
    at = THRESHOLDS.prefix_cache_hit_fall * WARM["hit"]
    assert prefix_cache_rule(context([COLD, WARM, WALL | {"hit": at}]))["hit"]
    assert not prefix_cache_rule(context([COLD, WARM, WALL | {"hit": at + 0.01}]))["hit"]
    rise = THRESHOLDS.prefill_rise * WARM["prefill"]
    assert prefix_cache_rule(context([WARM, WALL | {"prefill": rise}]))["hit"]
    assert not prefix_cache_rule(context([WARM, WALL | {"prefill": rise - 1}]))["hit"]
    mean = THRESHOLDS.prefix_cache_kv_usage
    assert prefix_cache_rule(context([WARM, WALL | {"kv": mean}]))["hit"]
    assert not prefix_cache_rule(context([WARM, WALL | {"kv": mean - 0.01}]))["hit"]
    # a pool full in one window counts even when the gauge, read between steps, averages lower
    one_full = [0.5] * (WINDOWS - 1) + [THRESHOLDS.kv_cache_usage]
    assert prefix_cache_rule(context([WARM, WALL | {"kv": one_full}]))["hit"]


@pytest.mark.parametrize(
    ("levels", "drop", "why"),
    [
        (EVICTION, ("prefix_cache_hit_rate",), "no prefix_cache_hit_rate samples"),
        (EVICTION, ("kv_cache_usage",), "no kv_cache_usage samples"),
        ([WALL], (), "needs two or more load levels"),
        ([lv | {"profile": "linear"} for lv in EVICTION], (), "needs two or more load levels"),
        ([WARM, WALL | {"load": 10}], (), "no level had a lower load"),
    ],
)
def test_absent_figures_are_a_miss_with_the_reason(levels: list[dict], drop: tuple[str, ...], why: str) -> None:
    c = prefix_cache_rule(context(levels, drop))
    assert not c["hit"] and c["reason_not"].startswith(why)


def test_open_loop_levels_are_named_in_req_per_s() -> None:
    c = prefix_cache_rule(context([lv | {"kind": "open"} for lv in EVICTION]))
    assert "from 60% at 10 req/s (stage L1) to 30% at 22 req/s" in c["sentence"]


# attribute(): prefix_cache against kv_cache and the others
QUEUED = {"waiting": 2.0}
KV_EARLY = HALF | {"kv": 0.97} | QUEUED  # kv_cache holds from L2; the hit rate has not fallen yet
# the batch limit holds from L3's first window (running at its most, a queue, KV with room) ...
BATCH_WALL = WALL | {"kv": [0.6, 0.6, 0.99, 0.99, 0.99], "running": [30] * WINDOWS} | QUEUED


def test_prefix_cache_is_named_for_the_full_pool_kv_cache_found() -> None:
    bn = attribute(context([COLD, WARM, KV_EARLY, WALL | QUEUED]))
    cand = {c["kind"]: c for c in bn["candidates"]}
    assert cand["kv_cache"]["hit"] and cand["kv_cache"]["stage"] == "L2"
    assert bn["kind"] == "prefix_cache" and bn["stage"] == "L3" and bn["sentence"] == cand["prefix_cache"]["sentence"]


def test_kv_cache_is_the_verdict_without_prefix_reuse() -> None:
    no_reuse = [lv | {"hit": 0.0} for lv in (COLD, WARM, KV_EARLY, WALL | QUEUED)]
    assert attribute(context(no_reuse))["kind"] == "kv_cache"


def test_it_wins_at_kv_caches_time_but_never_jumps_an_earlier_wall() -> None:
    # ... after kv_cache (L2) and before the prefix rule's own time (L3's third window): prefix_cache
    bn = attribute(context([COLD, WARM, KV_EARLY, BATCH_WALL]))
    assert {c["kind"] for c in bn["candidates"] if c["hit"]} == {"kv_cache", "batch_limit", "prefix_cache"}
    assert bn["kind"] == "prefix_cache", bn["sentence"]
    # without the earlier kv_cache, the batch limit held first
    bn = attribute(context([COLD, WARM, HALF, BATCH_WALL]))
    assert bn["kind"] == "batch_limit", bn["sentence"]
