"""The knee rule on hand-made load levels, including the cases real runs produce."""

from __future__ import annotations

import pandas as pd
import pytest

from satscope.reports._knee import find_knee


def _levels(loads: list[float], tokens: list[float], ttft: list[float], **extra: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stage": [f"s{i}" for i in range(len(loads))],
            "offered_load": loads,
            "output_tokens_per_s": tokens,
            "requests_per_s": [t / 10 for t in tokens],
            "ttft_intended_p99_s": ttft,
            **extra,
        }
    )


def test_clean_knee() -> None:
    knee = find_knee(_levels([1, 2, 4, 8, 16], [10, 20, 40, 44, 45], [0.1, 0.1, 0.1, 0.3, 0.9]), "stages")
    assert knee.found and knee.levels["stage"][knee.saturation_pos] == "s2"
    assert knee.levels["scaling_efficiency"][1] == pytest.approx(1.0)
    assert knee.levels["scaling_efficiency"][3] == pytest.approx(0.1)


def test_flat_throughput_without_latency_rise_is_not_a_knee() -> None:
    # e.g. a client-side cap: load "rose" but nothing queued at the server
    knee = find_knee(_levels([1, 2, 4, 8], [10, 20, 21, 21], [0.1, 0.1, 0.1, 0.1]), "stages")
    assert not knee.found and knee.levels["stage"][knee.saturation_pos] == "s3"


def test_one_noisy_level_is_not_a_knee() -> None:
    knee = find_knee(_levels([1, 2, 3, 4, 5], [10, 20, 21, 40, 50], [0.1, 0.1, 0.2, 0.2, 0.2]), "stages")
    assert not knee.found


def test_dropped_dispatches_count_as_the_latency_signal() -> None:
    """Open loop with an in-flight cap: the queue cannot grow, the load generator drops instead."""
    levels = _levels(
        [0.5, 3.25, 6.0], [12.8, 49.5, 52.6], [0.04, 3.49, 3.74], requests=[4, 21, 17], requests_dropped=[0, 2, 32]
    )
    knee = find_knee(levels, "stages")
    assert knee.found and knee.levels["stage"][knee.saturation_pos] == "s1"
    without = find_knee(levels.drop(columns=["requests_dropped"]), "stages")
    assert not without.found


def test_levels_are_sorted_by_load_and_equal_loads_skipped() -> None:
    knee = find_knee(_levels([4, 1, 2, 2, 8], [40, 10, 20, 19, 41], [0.1, 0.1, 0.1, 0.1, 0.5]), "stages")
    assert list(knee.levels["offered_load"]) == [1, 2, 2, 4, 8]
    assert knee.found and knee.levels["offered_load"][knee.saturation_pos] == 4


def test_no_token_counts_falls_back_to_requests_per_s() -> None:
    levels = _levels([1, 2, 4], [0, 0, 0], [0.1, 0.1, 0.5]).assign(requests_per_s=[1.0, 2.0, 2.1])
    knee = find_knee(levels, "stages")
    assert knee.throughput_column == "requests_per_s" and knee.found


def _open(dispatched: list[float], served: list[float], growth: list[float], request_s: float = 1.2) -> pd.DataFrame:
    return _levels(dispatched, [d * 32 for d in served], [0.1] * len(served)).assign(
        dispatched_per_s=dispatched, served_per_s=served, span_s=5.0, request_s=request_s,
        requests_waiting_growth_per_s=growth,
    )  # fmt: skip


def test_open_loop_knee_is_the_first_level_short_of_what_it_dispatched() -> None:
    # 25 requests dispatched, 16 served: 9 short, over 10% (2.5) and over 2√(1 + 5 × 1.2) = 5.3
    knee = find_knee(_open([1, 2.5, 5, 8], [1, 2.5, 3.2, 3.2], [0, 0, 0.3, 1.0]), "stages", open_loop=True)
    assert knee.found and knee.knee_pos == 2 and knee.saturation_pos == 1
    assert knee.sustainable_per_s == pytest.approx(3.2)


def test_open_loop_boundary_noise_and_a_passing_burst_are_not_a_knee() -> None:
    # 12.5 dispatched, 10 served: short by 2.5 (20%) but within 2√(1 + 2.5 × 1.2) = 4 of boundary noise;
    # a queue that rose 0.6/s for 5 s (3 requests) at that rate is a burst, not growth
    knee = find_knee(_open([1, 2.5], [1, 2.0], [0, 0.6]), "stages", open_loop=True)
    assert not knee.found
    # the same shortfall among many short requests is past the noise (2√(1 + 50 × 0.05) = 3.7 < 50)
    knee = find_knee(_open([10, 50], [10, 40], [0, 0], request_s=0.05), "stages", open_loop=True)
    assert knee.found and knee.knee_pos == 1


def test_open_loop_queue_growth_past_the_noise_is_a_knee_even_when_completions_keep_up() -> None:
    # served what it dispatched within the shifted window, but the server's queue rose by 2/s × 5 s = 10
    knee = find_knee(_open([1, 2.5, 3], [1, 2.5, 3], [0, 0, 2.0]), "stages", open_loop=True)
    assert knee.found and knee.knee_pos == 2
