"""Was the load generator, not the server, the limit? Figures from ``loadgen.parquet``.

A load generator that runs out of CPU, or whose event loop lags, delays reads and dispatches and
so inflates the latencies it reports; an open loop that leaves late cannot offer the rate it was
asked for. The run is then marked ``loadgen_saturated`` with the figures that say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "loadgen_figures", "saturation_verdict"]


@dataclass(slots=True, frozen=True)
class Limits:
    cpu_p90: float = 0.90  # of one core, per process (gevent runs on one)
    loop_lag_p90_s: float = 0.010
    late_share: float = 0.01  # of open-loop dispatches

    def __post_init__(self) -> None:
        if not (self.cpu_p90 > 0 and self.loop_lag_p90_s > 0 and 0 <= self.late_share <= 1):
            raise ValueError("limits must be positive")


def loadgen_figures(t: list[float], metric: list[str], value: list[float]) -> dict[str, float | None]:
    """cpu max/p90, loop-lag p99 and max in-flight over all processes' samples."""
    by: dict[str, list[float]] = {}
    for m, v in zip(metric, value, strict=True):
        by.setdefault(m, []).append(v)

    def q(name: str, p: float) -> float | None:
        vals = sorted(by.get(name, []))
        return vals[min(len(vals) - 1, int(p * len(vals)))] if vals else None

    return {
        "cpu_max": max(by["loadgen_cpu"]) if by.get("loadgen_cpu") else None,
        "cpu_p90": q("loadgen_cpu", 0.9),
        "loop_lag_p99_s": q("loadgen_loop_lag_s", 0.99),
        "loop_lag_p90_s": q("loadgen_loop_lag_s", 0.9),
        "max_in_flight": max(by["loadgen_in_flight"]) if by.get("loadgen_in_flight") else None,
    }


def saturation_verdict(
    figures: dict[str, Any], dispatched: int, late: int, limits: Limits = Limits()
) -> tuple[bool, str | None]:
    """(saturated, reason with the figures) for the run's load-generator figures."""
    reasons = []
    # p90s: a sustained limit, not one hiccup (a short run's p99 is its single worst sample)
    cpu, lag = figures.get("cpu_p90"), figures.get("loop_lag_p90_s")
    if cpu is not None and cpu >= limits.cpu_p90:
        reasons.append(f"load-generator CPU p90 {cpu:.0%} of a core (limit {limits.cpu_p90:.0%})")
    if lag is not None and lag >= limits.loop_lag_p90_s:
        reasons.append(f"gevent loop lag p90 {lag * 1e3:.1f} ms (limit {limits.loop_lag_p90_s * 1e3:.0f} ms)")
    if dispatched and late / dispatched > limits.late_share:
        reasons.append(
            f"{late} of {dispatched} open-loop dispatches left late "
            f"({late / dispatched:.1%}, limit {limits.late_share:.0%})"
        )
    return bool(reasons), ("; ".join(reasons) + "; add --workers") if reasons else None
