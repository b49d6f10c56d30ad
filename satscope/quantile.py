"""The one quantile definition of satscope: linear interpolation between closest ranks.

It is numpy's default (``np.quantile(..., method="linear")``, Hyndman & Fan type 7), which the
reports use on arrays; this pure-Python twin serves the processes that hold plain lists (the load
generator's live line and its own figures in ``run.json``), so a p99 means the same everywhere.
``tests/test_quantile.py`` checks the two against each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["quantile"]


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 ≤ q ≤ 1) of values sorted ascending; None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], not {q}")
    n = len(sorted_values)
    if n == 0:
        return None
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    a, b = sorted_values[lo], sorted_values[hi]
    if h == lo or a == b:  # exact rank, or equal neighbours: no 0 × inf or inf − inf (infinite values)
        return float(a)
    return float(a + (h - lo) * (b - a))
