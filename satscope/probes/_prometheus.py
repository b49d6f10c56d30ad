"""Prometheus source: the canonical series for the run's window, read back from a Prometheus server.

For fleets beyond one machine the telemetry already lives in Prometheus. At the end of the run
this source asks ``/api/v1/query_range`` for each canonical metric of the detected engine (gauges
as they are, counters through ``rate()``, histogram means as ``rate(_sum)/rate(_count)``), one
series per ``instance``, and converts Prometheus' Unix timestamps onto the monotonic clock with the
offset measured when the source was created.
"""

from __future__ import annotations

import math
import time
from typing import Any

from satscope.probes._engines import (
    ENGINES,
    Counter,
    CounterRatio,
    Difference,
    Gauge,
    HistMean,
    Pick,
    Ratio,
    detect_engine,
)
from satscope.probes._source import Row, SourceUnavailable

__all__ = ["PrometheusSource", "promql_for"]

_MAX_POINTS = 10_000  # Prometheus refuses range queries of more than 11,000 points per series


def _selector(pick: Pick, extra: str) -> str:
    matchers = [f'{k}="{v}"' for k, v in sorted(pick.where.items())]
    if extra:
        matchers.append(extra)
    return f"{pick.name}{{{','.join(matchers)}}}" if matchers else pick.name


def promql_for(engine: str, names: set[str], selector: str = "", window_s: float = 30.0) -> dict[str, str]:
    """PromQL per canonical metric for ``engine``, using only metric names Prometheus has."""
    by = "sum by (instance)"
    window = f"{max(math.ceil(window_s), 1)}s"
    queries: dict[str, str] = {}
    for spec in ENGINES[engine]:
        if isinstance(spec, Gauge | CounterRatio) and spec.canonical in queries:
            continue  # an earlier spec (the counters) already answers this canonical
        if isinstance(spec, CounterRatio):
            alt = next((a for a in spec.alternatives if {a[0], *a[1]} <= names), None)
            if alt is not None:
                num = f"{by} (rate({_selector(Pick(alt[0]), selector)}[{window}]))"
                den = " + ".join(f"{by} (rate({_selector(Pick(d), selector)}[{window}]))" for d in alt[1])
                queries[spec.canonical] = f"{num} / ({den})"
        elif isinstance(spec, Gauge):
            pick = next((p for p in spec.picks if p.name in names), None)
            if pick is not None:
                agg = "avg by (instance)" if spec.agg == "avg" else by
                queries[spec.canonical] = f"{agg} ({_selector(pick, selector)})"
        elif isinstance(spec, Ratio | Difference):
            ratio = isinstance(spec, Ratio)
            a, b = (spec.numerator, spec.denominator) if ratio else (spec.minuend, spec.subtrahend)
            if a.name in names and b.name in names:
                left, right = _selector(a, selector), _selector(b, selector)
                queries[spec.canonical] = f"{by} ({left}) {'/' if ratio else '-'} {by} ({right})"
        elif isinstance(spec, Counter):
            name = next((n for n in spec.names if n in names), None)
            if name is not None:
                queries[spec.rate_metric] = f"{by} (rate({_selector(Pick(name), selector)}[{window}]))"
        elif isinstance(spec, HistMean):
            base = next((b for b in spec.bases if f"{b}_count" in names), None)
            if base is not None:
                total = _selector(Pick(f"{base}_sum"), selector)
                count = _selector(Pick(f"{base}_count"), selector)
                queries[spec.canonical] = f"{by} (rate({total}[{window}])) / {by} (rate({count}[{window}]))"
    return queries


class PrometheusSource:
    """Reads the run's window back from a Prometheus server (source ``prometheus``) at the end."""

    name = "prometheus"

    def __init__(self, url: str, selector: str = "", step_s: float = 1.0, rate_window_s: float = 30.0,
                 timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.selector = selector
        self.step_s = step_s
        self.rate_window_s = rate_window_s
        self.timeout_s = timeout_s
        self.engine: str | None = None
        # One instant read on both clocks: Prometheus speaks Unix time, the run directory monotonic.
        self.wall_minus_monotonic = time.time() - time.monotonic()

    def _get(self, client: Any, path: str, params: dict[str, Any]) -> Any:
        import httpx

        try:
            response = client.get(f"{self.url}{path}", params=params)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceUnavailable(f"Prometheus at {self.url} did not answer {path}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if body.get("status") != "success":
            raise SourceUnavailable(f"Prometheus at {self.url} refused {path}: {body.get('error')}")
        return body["data"]

    def collect(self, start_s: float, end_s: float) -> list[Row]:
        """Canonical rows for the monotonic window ``[start_s, end_s]``."""
        import httpx

        with httpx.Client(timeout=self.timeout_s, trust_env=False) as client:
            params = {"match[]": f"{{{self.selector}}}"} if self.selector else {}
            names = set(self._get(client, "/api/v1/label/__name__/values", params))
            self.engine = detect_engine(names)
            if self.engine is None:
                raise SourceUnavailable(f"Prometheus at {self.url} has no metrics of a known engine")
            start = start_s + self.wall_minus_monotonic
            end = max(end_s + self.wall_minus_monotonic, start)
            step = max(self.step_s, (end - start) / _MAX_POINTS)
            window = max(self.rate_window_s, 2 * step)
            rows: list[Row] = []
            for metric, query in promql_for(self.engine, names, self.selector, window).items():
                data = self._get(client, "/api/v1/query_range",
                                 {"query": query, "start": start, "end": end, "step": step})
                for series in data.get("result", []):
                    instance = series["metric"].get("instance")
                    labels = {"instance": instance} if instance is not None else {}
                    for ts, text in series.get("values", []):
                        value = float(text)
                        if math.isfinite(value):
                            t = float(ts) - self.wall_minus_monotonic
                            rows.append(Row(t, self.name, metric, value, labels))
        return rows
