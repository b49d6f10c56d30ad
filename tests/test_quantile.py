"""One quantile definition: the load generator's pure-Python quantile equals the reports' numpy one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from satscope.quantile import quantile


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0.0, 1.0),
)
def test_equals_numpy_linear(values: list[float], q: float) -> None:
    ours = quantile(sorted(values), q)
    assert ours == pytest.approx(float(np.quantile(values, q)), rel=1e-9, abs=1e-6)


def test_small_cases_and_bad_input() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0], 0.99) == 3.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5  # nearest-rank would say 3
    assert quantile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        quantile([1.0], 99)


def test_infinite_values_count_as_past_every_bound() -> None:
    # the curve's bootstrap counts a resample without a peak as +inf (satscope/reports/_curve.py)
    inf = float("inf")
    assert quantile([1.0, 2.0, inf, inf], 1.0) == inf and quantile([1.0, 2.0, inf, inf], 0.9) == inf
    assert quantile([1.0, 2.0, inf], 0.5) == 2.0  # an exact rank: no 0 × inf
    assert quantile([1.0, 2.0, 3.0, inf], 0.5) == 2.5
