"""Probes: GPU (NVML, DCGM), server ``/metrics`` across engines, host, and Prometheus, on one clock.

They run in their own plain-Python process (``python -m probes``, started by ``satscope run``)
and write ``samples.parquet`` and ``probes.json`` into the run directory (docs/run-format.md).
See docs/probes.md for what each source measures and how it was verified.
"""

from probes._config import DEFAULT_INTERVALS_S, ProbeConfig
from probes._engines import ENGINES, detect_engine
from probes._exposition import Exposition, parse_exposition
from probes._mapping import CanonicalMapper
from probes._runner import ProbeRunner
from probes._source import Row, SourceUnavailable

__all__ = [
    "DEFAULT_INTERVALS_S",
    "ENGINES",
    "CanonicalMapper",
    "Exposition",
    "ProbeConfig",
    "ProbeRunner",
    "Row",
    "SourceUnavailable",
    "detect_engine",
    "parse_exposition",
]
