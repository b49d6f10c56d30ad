"""Turn successive scrapes of one engine's ``/metrics`` into canonical rows (source ``server``)."""

from __future__ import annotations

from satscope.probes._counters import CounterTracker, HistogramMeanTracker, counter_increase
from satscope.probes._engines import ENGINES, Counter, CounterRatio, Difference, Gauge, HistMean, Pick, Ratio
from satscope.probes._exposition import Exposition
from satscope.probes._source import Row

__all__ = ["CanonicalMapper"]


def _value(expo: Exposition, pick: Pick, agg: str = "sum") -> float | None:
    return expo.mean(pick.name, pick.where) if agg == "avg" else expo.total(pick.name, pick.where)


class CanonicalMapper:
    """Stateful mapper for one engine: gauges pass through, counters and histograms need history."""

    def __init__(self, engine: str, source: str = "server") -> None:
        self.engine = engine
        self.source = source
        self.specs = ENGINES[engine]
        self._counters: dict[str, CounterTracker] = {}
        self._histograms: dict[str, HistogramMeanTracker] = {}
        self._ratios: dict[str, tuple[float, float]] = {}  # canonical -> (numerator, denominator) last read

    def rows(self, t: float, expo: Exposition) -> list[Row]:
        out: list[Row] = []
        seen: set[str] = set()
        for spec in self.specs:
            for metric, value in self._apply(spec, t, expo):
                if metric not in seen:  # a fallback spec for the same canonical yields to the first
                    seen.add(metric)
                    out.append(Row(t, self.source, metric, value))
        return out

    def _apply(self, spec: object, t: float, expo: Exposition) -> list[tuple[str, float]]:
        if isinstance(spec, Gauge):
            for pick in spec.picks:
                value = _value(expo, pick, spec.agg)
                if value is not None:
                    return [(spec.canonical, value)]
            return []
        if isinstance(spec, Ratio):
            num, den = _value(expo, spec.numerator), _value(expo, spec.denominator)
            return [(spec.canonical, num / den)] if num is not None and den else []
        if isinstance(spec, Difference):
            a, b = _value(expo, spec.minuend), _value(expo, spec.subtrahend)
            return [(spec.canonical, max(a - b, 0.0))] if a is not None and b is not None else []
        if isinstance(spec, Counter):
            return self._counter(spec, t, expo)
        if isinstance(spec, HistMean):
            return self._histogram(spec, expo)
        if isinstance(spec, CounterRatio):
            return self._counter_ratio(spec, expo)
        raise TypeError(f"unknown spec {spec!r}")

    def _counter(self, spec: Counter, t: float, expo: Exposition) -> list[tuple[str, float]]:
        name = next((n for n in spec.names if expo.has(n)), None)
        if name is None:
            return []
        value = expo.total(name)
        assert value is not None
        tracker = self._counters.setdefault(spec.rate_metric, CounterTracker())
        rate = tracker.update(t, value)
        out = [] if rate is None else [(spec.rate_metric, rate)]
        if spec.total_metric is not None and tracker.total is not None:
            out.append((spec.total_metric, tracker.total))
        return out

    def _histogram(self, spec: HistMean, expo: Exposition) -> list[tuple[str, float]]:
        base = next((b for b in spec.bases if expo.has(f"{b}_count")), None)
        if base is None:
            return []
        total, count = expo.total(f"{base}_sum"), expo.total(f"{base}_count")
        if total is None or count is None:
            return []
        mean = self._histograms.setdefault(spec.canonical, HistogramMeanTracker()).update(total, count)
        return [] if mean is None else [(spec.canonical, mean)]

    def _counter_ratio(self, spec: CounterRatio, expo: Exposition) -> list[tuple[str, float]]:
        for numerator, denominators in spec.alternatives:
            if expo.has(numerator) and all(expo.has(d) for d in denominators):
                break
        else:
            return []
        num = expo.total(numerator) or 0.0
        den = sum(expo.total(d) or 0.0 for d in denominators)
        previous = self._ratios.get(spec.canonical)
        self._ratios[spec.canonical] = (num, den)
        if previous is None:
            return []
        d_num, d_den = counter_increase(previous[0], num), counter_increase(previous[1], den)
        return [(spec.canonical, min(d_num / d_den, 1.0))] if d_den > 0 else []
