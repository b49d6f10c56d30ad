"""`build_report` and `analyze`: the public entry points for one run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satscope.run_format import SUMMARY_FILE, write_bytes_atomic, write_json_atomic

__all__ = ["REPORT_FILE", "ReportResult", "analyze", "build_report"]

REPORT_FILE = "report.html"


@dataclass(slots=True)
class ReportResult:
    """Where the report went and what it concluded."""

    html_path: Path
    summary_path: Path
    verdict: str
    summary: dict[str, Any]


def analyze(run_dir: str | Path, slos: Any = None, window_s: float = 1.0) -> dict[str, Any]:
    """The summary of ``run_dir`` (docs/summary-format.md), without writing anything.

    ``slos``: ``["ttft=0.5", "itl=50ms"]``, ``{"ttft": 0.5}`` or ``None``.
    """
    from reports._analyze import run_analysis

    return run_analysis(run_dir, slos, window_s).summary


def build_report(
    run_dir: str | Path, out: str | Path | None = None, slos: Any = None, window_s: float = 1.0
) -> ReportResult:
    """Analyse ``run_dir``; write ``summary.json`` into it and the HTML to ``out`` (default
    ``run_dir/report.html``), both atomically."""
    from reports._analyze import run_analysis
    from reports._html import render_page
    from reports._report_page import report_page

    analysis = run_analysis(run_dir, slos, window_s)
    html_path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    summary_path = write_json_atomic(Path(run_dir) / SUMMARY_FILE, analysis.summary)
    write_bytes_atomic(html_path, render_page(report_page(analysis)).encode())
    return ReportResult(html_path, summary_path, analysis.summary["verdict"], analysis.summary)
