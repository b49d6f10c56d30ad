"""`build_report` and `analyze`: the public entry points for one run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satscope.run_format import SUMMARY_FILE, write_bytes_atomic, write_json_atomic

__all__ = ["REPORT_FILE", "STAGES_CSV_FILE", "ReportResult", "analyze", "build_report"]

REPORT_FILE = "report.html"
STAGES_CSV_FILE = "stages.csv"


@dataclass(slots=True)
class ReportResult:
    """Where the report went and what it concluded."""

    html_path: Path
    summary_path: Path
    verdict: str
    summary: dict[str, Any]


def analyze(
    run_dir: str | Path,
    slos: Any = None,
    window_s: float = 1.0,
    *,
    warmup_s: float | None = None,
    percentiles: Any = None,
) -> dict[str, Any]:
    """The summary of ``run_dir`` (docs/summary-format.md), without writing anything.

    ``slos``: ``["ttft=0.5", "itl=50ms"]``, ``{"ttft": 0.5}`` or ``None``. ``warmup_s`` and
    ``percentiles`` (``"50,90,99.9"`` or a list): None takes what the run recorded.
    """
    from satscope.reports._analyze import run_analysis

    return run_analysis(run_dir, slos, window_s, warmup_s=warmup_s, percentiles=percentiles).summary


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    slos: Any = None,
    window_s: float = 1.0,
    *,
    warmup_s: float | None = None,
    percentiles: Any = None,
) -> ReportResult:
    """Analyse ``run_dir``; write ``summary.json`` and ``stages.csv`` into it and the HTML to ``out``
    (default ``run_dir/report.html``), all atomically."""
    from satscope.reports._analyze import run_analysis
    from satscope.reports._html import render_page
    from satscope.reports._report_page import report_page

    analysis = run_analysis(run_dir, slos, window_s, warmup_s=warmup_s, percentiles=percentiles)
    html_path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    summary_path = write_json_atomic(Path(run_dir) / SUMMARY_FILE, analysis.summary)
    columns = [c for c in analysis.stages.columns if not str(c).startswith("_")]
    write_bytes_atomic(Path(run_dir) / STAGES_CSV_FILE, stages_csv(columns, analysis.summary["stages"]).encode())
    write_bytes_atomic(html_path, render_page(report_page(analysis)).encode())
    return ReportResult(html_path, summary_path, analysis.summary["verdict"], analysis.summary)


def stages_csv(columns: list[str], stages: list[dict[str, Any]]) -> str:
    """summary.json's ``stages`` as CSV: a header of ``columns``, a row per stage; null is an empty
    cell and a float keeps every digit (Python's shortest round-trip form), so the figures are the
    summary's own."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in stages:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return buf.getvalue()
