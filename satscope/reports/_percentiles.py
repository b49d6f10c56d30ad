"""Which latency percentiles the report computes, and what they are called.

The levels come from ``--percentiles`` (``satscope run`` stores them in ``run.json``
``config.report.percentiles``; ``satscope report`` may override them). p50, p90 and p99 are always
among them: the knee, the verdict, goodput, the gate rules and compare read those. A level is
named ``p`` and its number with ``_`` for the decimal point: ``p95``, ``p99_9``; the per-stage
table's columns are ``ttft_p99_9_s`` and so on.

The levels hold for one analysis: :func:`percentile_levels` sets them around it (a context
variable, so analyses in other threads keep their own), and every percentile helper of
``satscope.reports._stats`` reads them, the stage and window tables included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from satscope.errors import SatscopeError

__all__ = [
    "DEFAULT_LEVELS",
    "REQUIRED_LEVELS",
    "as_json",
    "current_levels",
    "parse_percentiles",
    "percentile_key",
    "percentile_levels",
]

DEFAULT_LEVELS: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
REQUIRED_LEVELS: tuple[float, ...] = (50.0, 90.0, 99.0)
_EXAMPLE = "e.g. --percentiles 50,90,95,99,99.9"
_levels: ContextVar[tuple[float, ...]] = ContextVar("satscope_percentile_levels", default=DEFAULT_LEVELS)


def parse_percentiles(value: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"50,90,99.9"`` (or a list of numbers) to sorted levels with p50, p90 and p99 added; None:
    the default. SatscopeError for a level that is not a number strictly between 0 and 100 with at
    most three decimals."""
    if value is None:
        return DEFAULT_LEVELS
    items = [x.strip() for x in value.split(",")] if isinstance(value, str) else list(value)
    levels: set[float] = set(REQUIRED_LEVELS)
    for item in items:
        try:
            level = float(item)
        except (TypeError, ValueError):
            raise SatscopeError(f"--percentiles {item!r} is not a number", _EXAMPLE) from None
        if isinstance(item, bool) or not 0 < level < 100 or round(level, 3) != level:
            raise SatscopeError(
                f"--percentiles {item}: a level is a number between 0 and 100 (exclusive) with at most 3 decimals",
                _EXAMPLE,
            )
        levels.add(level)
    return tuple(sorted(levels))


def percentile_key(level: float) -> str:
    """``50.0`` → ``p50``, ``99.9`` → ``p99_9``."""
    return "p" + f"{level:g}".replace(".", "_")


def as_json(levels: Sequence[float]) -> list[float | int]:
    """The levels as run.json and summary.json write them: whole numbers without ``.0``."""
    return [int(p) if float(p).is_integer() else float(p) for p in levels]


def current_levels() -> tuple[float, ...]:
    """The levels of the analysis under way (the default outside one)."""
    return _levels.get()


@contextlib.contextmanager
def percentile_levels(levels: Sequence[float]) -> Iterator[None]:
    """Compute ``levels`` (already parsed) inside the block."""
    token = _levels.set(tuple(levels))
    try:
        yield
    finally:
        _levels.reset(token)
