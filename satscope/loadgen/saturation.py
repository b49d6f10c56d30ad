"""The load generator's own figures for run.json, from its ``loadgen.parquet`` samples.

These are records, not a judgement: whether the client limited the run is decided per worker in
``satscope/reports/`` (``satscope/reports/_client.py``), so ``satscope report`` can re-judge an old run.
"""

from __future__ import annotations

from satscope.quantile import quantile

__all__ = ["loadgen_figures"]


def loadgen_figures(t: list[float], metric: list[str], value: list[float]) -> dict[str, float | None]:
    """cpu max/p90, loop-lag p99 and max in-flight over all processes' samples."""
    by: dict[str, list[float]] = {}
    for m, v in zip(metric, value, strict=True):
        by.setdefault(m, []).append(v)

    def q(name: str, p: float) -> float | None:
        return quantile(sorted(by.get(name, [])), p)

    return {
        "cpu_max": max(by["loadgen_cpu"]) if by.get("loadgen_cpu") else None,
        "cpu_p90": q("loadgen_cpu", 0.9),
        "loop_lag_p99_s": q("loadgen_loop_lag_s", 0.99),
        "loop_lag_p90_s": q("loadgen_loop_lag_s", 0.9),
        "max_in_flight": max(by["loadgen_in_flight"]) if by.get("loadgen_in_flight") else None,
    }
