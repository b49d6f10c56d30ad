"""Saturation reports: read a run directory, find the knee, name the bottleneck with evidence.

``build_report`` writes ``summary.json`` (docs/summary-format.md), ``stages.csv`` and a
self-contained ``report.html``; ``analyze`` returns the summary only; ``compare_runs`` overlays two runs. The
rules are in docs/reports.md. Nothing here imports ``loadgen`` or ``probes``: the run directory
(docs/run-format.md) is the only input.
"""

from satscope.reports._build import ReportResult, analyze, build_report
from satscope.reports._compare import CompareResult, compare_runs
from satscope.reports._goodput import Slos, parse_slos
from satscope.reports._load import ReportInputError
from satscope.reports._report_settings import ReportSettings

__all__ = [
    "CompareResult",
    "ReportInputError",
    "ReportResult",
    "ReportSettings",
    "Slos",
    "analyze",
    "build_report",
    "compare_runs",
    "parse_slos",
]
