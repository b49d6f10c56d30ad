"""The knee rule on hand-made load levels, including the cases real runs produce."""

from __future__ import annotations

import pandas as pd
import pytest

from reports._knee import find_knee


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
