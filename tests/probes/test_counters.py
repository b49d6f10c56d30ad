"""Counter rates and histogram means: first sample, resets, and never a negative rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from satscope.probes._counters import CounterTracker, HistogramMeanTracker, counter_increase


def test_first_reading_gives_no_rate_then_rates_follow() -> None:
    tracker = CounterTracker()
    assert tracker.update(10.0, 100.0) is None
    assert tracker.update(12.0, 130.0) == pytest.approx(15.0)
    assert tracker.total == 130.0


def test_reset_counts_the_new_value_as_the_increase() -> None:
    assert counter_increase(500.0, 20.0) == 20.0
    tracker = CounterTracker()
    tracker.update(0.0, 500.0)
    assert tracker.update(1.0, 20.0) == pytest.approx(20.0)
    assert tracker.total == 520.0


def test_same_instant_gives_no_rate() -> None:
    tracker = CounterTracker()
    tracker.update(1.0, 1.0)
    assert tracker.update(1.0, 2.0) is None


@given(st.lists(st.tuples(st.floats(0.01, 10.0), st.floats(0.0, 1e6), st.booleans()), min_size=2, max_size=50))
def test_rates_never_negative_and_total_never_decreases(steps: list[tuple[float, float, bool]]) -> None:
    tracker, t, value, total = CounterTracker(), 0.0, 0.0, None
    for dt, increase, reset in steps:
        t += dt
        value = increase if reset else value + increase
        rate = tracker.update(t, value)
        assert rate is None or rate >= 0.0
        assert total is None or tracker.total >= total
        total = tracker.total


def test_histogram_mean_over_the_interval_and_after_a_reset() -> None:
    tracker = HistogramMeanTracker()
    assert tracker.update(10.0, 5.0) is None
    assert tracker.update(16.0, 8.0) == pytest.approx(2.0)
    assert tracker.update(16.0, 8.0) is None  # nothing observed: unknown, not zero
    assert tracker.update(3.0, 2.0) == pytest.approx(1.5)  # restarted server: its own observations
