"""The live table ``satscope probe`` shows: the latest value of every metric, with its unit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from satscope.probes._runner import ProbeRunner

__all__ = ["format_value", "live_table"]

_RATIO_SUFFIXES = ("_usage", "_util", "_busy", "_occupancy", "_active")


def format_value(metric: str, value: float) -> str:
    """Human form of a canonical metric's value, by the unit its name says."""
    if metric.endswith(_RATIO_SUFFIXES):
        return f"{value * 100:.1f} %"
    if metric.endswith("_bytes_per_s"):
        return f"{value / 1e6:.2f} MB/s"
    if metric.endswith("_bytes"):
        return f"{value / 2**20:.1f} MiB"
    if metric.endswith("_s"):
        return f"{value * 1000:.2f} ms" if not metric.endswith("_per_s") else f"{value:.1f} /s"
    if metric.endswith("_w"):
        return f"{value:.0f} W"
    if metric.endswith("_j"):
        return f"{value:.0f} J"
    if metric.endswith("_mhz"):
        return f"{value:.0f} MHz"
    return f"{value:.3g}"


def live_table(runner: ProbeRunner, now: float) -> Table:
    from rich.table import Table

    status = ", ".join(f"{name}: {state}" for name, state in runner.status().items())
    table = Table(title=f"satscope probe — {status}", caption=f"{len(runner.buffer)} samples")
    for column in ("source", "metric", "labels", "value", "age"):
        table.add_column(column, justify="right" if column in ("value", "age") else "left")
    for (source, metric, labels), (t, value) in sorted(runner.buffer.latest_values().items()):
        table.add_row(source, metric, labels, format_value(metric, value), f"{max(now - t, 0.0):.1f} s")
    return table
