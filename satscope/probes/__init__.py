"""Probes: GPU (NVML, DCGM), server ``/metrics`` across engines, host, and Prometheus, on one clock.

They run in their own plain-Python process (``python -m satscope.probes``, started by ``satscope run``)
and write ``samples.parquet`` and ``probes.json`` into the run directory (docs/run-format.md).
See docs/probes.md for what each source measures and how it was verified.
"""

from satscope.probes._config import DEFAULT_INTERVALS_S, ProbeConfig
from satscope.probes._engines import ENGINES, detect_engine
from satscope.probes._exposition import Exposition, parse_exposition
from satscope.probes._mapping import CanonicalMapper
from satscope.probes._runner import ProbeRunner
from satscope.probes._source import Row, SourceUnavailable

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
