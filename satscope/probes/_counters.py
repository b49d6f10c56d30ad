"""Counters into rates and histograms into interval means, with counter resets handled.

A Prometheus counter only goes up; when it goes down the process behind it restarted and began
again from zero, so the increase since the previous sample is the new value itself (the rule
Prometheus' own ``rate()`` uses). No rate is ever negative, and the first sample gives no rate.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CounterTracker", "HistogramMeanTracker", "counter_increase"]


def counter_increase(previous: float, current: float) -> float:
    """Increase of a counter between two readings; a decrease means a reset to zero in between.

    After a reset the counter counted up from zero, so the increase is its current value; a
    negative reading (a broken exporter) counts as no increase rather than a negative rate.
    """
    return current - previous if current >= previous else max(current, 0.0)


@dataclass(slots=True)
class CounterTracker:
    """Follows one counter: per-second rate and a cumulative total that survives resets."""

    _t: float | None = None
    _value: float = 0.0
    total: float | None = None

    def update(self, t: float, value: float) -> float | None:
        """Record a reading at ``t``; return the rate since the previous reading, or ``None``."""
        if self._t is None:
            self._t, self._value, self.total = t, value, value
            return None
        dt = t - self._t
        increase = counter_increase(self._value, value)
        self._t, self._value = t, value
        self.total = (self.total or 0.0) + increase
        return increase / dt if dt > 0 else None


@dataclass(slots=True)
class HistogramMeanTracker:
    """Mean of the observations made between two readings of a histogram's ``_sum`` and ``_count``."""

    _sum: float | None = None
    _count: float = 0.0

    def update(self, total: float, count: float) -> float | None:
        """Return the interval mean, or ``None`` if nothing was observed (unknown, not zero)."""
        if self._sum is None:
            self._sum, self._count = total, count
            return None
        if count < self._count:
            d_sum, d_count = total, count
        else:
            d_sum, d_count = total - self._sum, count - self._count
        self._sum, self._count = total, count
        return d_sum / d_count if d_count > 0 else None
