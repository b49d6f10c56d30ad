"""Open-loop arrival schedules: constant, Poisson and gamma gaps at a rate that follows the shape.

``arrival_times`` is a pure generator of intended send times (seconds since the shape started),
so tests check rates and burstiness without a clock; the dispatcher in ``satscope/loadgen/_process.py``
sleeps until each time and records how late it actually left. ``next_arrival`` serves an open-loop
search, whose levels become known only as it runs: the next time after the last one, at the rate
of the level in force then.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from satscope.loadgen.shapes import Shape

__all__ = ["arrival_times", "next_arrival", "next_gap"]

# When the rate is zero nothing arrives; look again this often (a rate can ramp up from zero).
_IDLE_STEP_S = 0.05


def next_gap(arrival: str, rate_rps: float, rng: random.Random, cv: float = 1.0) -> float:
    """Seconds to the next arrival of one process at ``rate_rps``."""
    if rate_rps <= 0:
        raise ValueError("rate must be > 0")
    if arrival == "constant":
        return 1.0 / rate_rps
    if arrival == "poisson":
        return rng.expovariate(rate_rps)
    if arrival == "gamma":
        # shape k = 1/cv²; mean gap k·θ = 1/rate. cv > 1 is burstier than Poisson, < 1 smoother.
        k = 1.0 / (cv * cv)
        return rng.gammavariate(k, 1.0 / (rate_rps * k))
    raise ValueError(f"unknown arrival process {arrival!r}")


def arrival_times(shape: Shape, rng: random.Random, share: float = 1.0, phase: float = 0.0) -> Iterator[float]:
    """Intended arrival times of one dispatcher, in seconds since the shape started.

    ``share`` is this dispatcher's part of the rate (1/N for N load-generator processes: N Poisson
    streams at rate/N superpose to one at rate). ``phase`` in [0, 1) staggers constant-rate
    dispatchers so N of them interleave instead of firing together.
    """
    if shape.kind != "open":
        raise ValueError("arrival times need an open-loop (rate) shape")
    t = 0.0
    first = True
    while True:
        point = shape.at(t)
        if point is None:
            return
        rate = point.load * share
        if rate <= 0:
            t += _IDLE_STEP_S
            continue
        gap = next_gap(point.stage.arrival, rate, rng, point.stage.arrival_cv)
        if first and point.stage.arrival == "constant":
            gap *= phase
        first = False
        stage_end = shape.starts_s[point.stage_index] + point.stage.duration_s
        if t + gap >= stage_end:
            # redraw from the boundary at the next stage's rate (exact for Poisson: memoryless)
            t = stage_end
            continue
        t += gap
        yield t


def next_arrival(t: float, levels: Sequence[tuple[float, float]], arrival: str, rng: random.Random,
                 share: float = 1.0, cv: float = 1.0, phase: float | None = None) -> float:  # fmt: skip
    """The arrival after ``t`` (the last one, or the first level's start) when the load holds
    ``levels``, ``(start, rate)`` sorted by start, each until the next one's start: a gap drawn at
    the rate of the level in force at ``t``; a draw that crosses a later level's start is redrawn
    from that start at its rate, as :func:`arrival_times` does at a stage boundary (exact for
    Poisson: memoryless). ``phase`` scales the first gap of a constant-rate dispatcher."""
    while True:
        i = max((k for k, (start, _) in enumerate(levels) if start <= t), default=0)
        following = levels[i + 1][0] if i + 1 < len(levels) else math.inf
        rate = levels[i][1] * share
        if rate <= 0:
            if math.isinf(following):
                return math.inf
            t = following
            continue
        gap = next_gap(arrival, rate, rng, cv)
        if phase is not None and arrival == "constant":
            gap *= phase
        phase = None
        if t + gap >= following:
            t = following
            continue
        return t + gap
