"""The value distributions of the workload flags, drawn in one place: prompt and answer lengths
(``LengthDist``) and think times (``ThinkTime``) are ``KIND:MEAN[:SPREAD]`` of the same four kinds."""

from __future__ import annotations

import math
import random

__all__ = ["DISTRIBUTIONS", "draw"]

DISTRIBUTIONS = ("fixed", "uniform", "normal", "lognormal")


def draw(kind: str, mean: float, spread: float, rng: random.Random) -> float:
    """``fixed`` (mean), ``uniform`` (mean ± spread), ``normal`` (mean, sd = spread), ``lognormal``
    (median = mean, sigma = spread); the caller rounds and bounds."""
    if kind == "fixed":
        return float(mean)
    if kind == "uniform":
        return rng.uniform(mean - spread, mean + spread)
    if kind == "normal":
        return rng.gauss(mean, spread)
    return mean * math.exp(rng.gauss(0.0, spread))
