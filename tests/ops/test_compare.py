"""The comparison helper names the worst element, so a kernel failure says where it went wrong."""

from __future__ import annotations

import pytest
import torch

from tests.ops.compare import assert_close


def test_reports_the_index_of_the_worst_element() -> None:
    expected = torch.zeros(2, 3, 4)
    actual = expected.clone()
    actual[1, 2, 3] = 0.5
    actual[0, 1, 1] = 0.1
    with pytest.raises(AssertionError, match=r"2/24 elements .* worst at index \(1, 2, 3\): got 0\.5, expected 0"):
        assert_close(actual, expected, (1e-3, 0.0), "probe")


def test_within_tolerance_passes_and_nan_fails() -> None:
    expected = torch.ones(5)
    assert_close(expected + 1e-4, expected, (2e-4, 0.0))
    with pytest.raises(AssertionError, match=r"non-finite values at \[\[3\]\]"):
        assert_close(torch.tensor([1.0, 1.0, 1.0, float("nan"), 1.0]), expected, (1.0, 1.0))
