"""The report settings a run carries: warm-up and percentile levels (``run.json`` ``config.report``).

``satscope run --warmup S --percentiles 50,90,99.9`` writes them with the run, so a later
``satscope report`` (or ``gate``, or ``compare``) analyses the run the same way; ``satscope
report --warmup`` / ``--percentiles`` override them for that report (run.json is not changed).
Both sides use this one type: ``to_json`` for the writer, ``of_run`` for the reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from satscope.errors import SatscopeError
from satscope.reports._percentiles import DEFAULT_LEVELS, as_json, parse_percentiles

__all__ = ["ReportSettings"]


@dataclass(slots=True, frozen=True)
class ReportSettings:
    """Seconds of load left out at the start, and the latency percentile levels (p50/p90/p99 included)."""

    warmup_s: float = 0.0
    percentiles: tuple[float, ...] = DEFAULT_LEVELS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise SatscopeError(f"--warmup must be >= 0 seconds, got {self.warmup_s:g}", "e.g. --warmup 10")

    @classmethod
    def parse(cls, warmup_s: float | None, percentiles: Any) -> ReportSettings:
        """From the command line; SatscopeError for a bad value."""
        return cls(float(warmup_s or 0.0), parse_percentiles(percentiles))

    def to_json(self) -> dict[str, Any]:
        return {"warmup_s": self.warmup_s, "percentiles": as_json(self.percentiles)}

    @classmethod
    def of_run(cls, manifest: dict[str, Any], warmup_s: float | None = None, percentiles: Any = None) -> ReportSettings:
        """The run's recorded settings, each overridden by a value that is not None."""
        from satscope.reports._load import ReportInputError

        stored = ((manifest.get("config") or {}).get("report") or {}) if isinstance(manifest, dict) else {}
        if not isinstance(stored, dict):
            stored = {}
        given = cls.parse(warmup_s, percentiles)  # a bad override is the caller's error, named by its flag
        try:
            recorded = cls.parse(stored.get("warmup_s"), stored.get("percentiles"))
        except (SatscopeError, TypeError, ValueError) as exc:
            raise ReportInputError(
                f"run.json config.report holds a bad setting: {exc}",
                "override it with satscope report --warmup / --percentiles",
            ) from None
        return cls(
            recorded.warmup_s if warmup_s is None else given.warmup_s,
            recorded.percentiles if percentiles is None else given.percentiles,
        )
