"""`satscope report` and `satscope compare`: a run directory (or two) to a self-contained HTML report.

Imports only typer and the standard library at module level so `satscope --help` stays instant;
``reports`` (pandas, plotly) is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["compare", "report"]


def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory (holds run.json).")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default RUN/report.html).")] = None,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            help="Service-level objective for goodput, KEY=SECONDS with KEY ttft, itl or e2e; repeat it, "
            "e.g. --slo ttft=0.5 --slo itl=50ms."
        ),
    ] = None,
    window: Annotated[float, typer.Option(help="Width of the time windows, seconds.", min=0.01)] = 1.0,
    warmup: Annotated[
        float | None,
        typer.Option(help="Leave the first S seconds of load out of every figure (default: the run's --warmup)."),
    ] = None,
    percentiles: Annotated[
        str | None,
        typer.Option(help="Latency percentiles for the tables and summary, e.g. 50,90,95,99,99.9 (p50, p90 and "
                     "p99 always; default: the run's --percentiles, else 50,90,95,99)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print summary.json to stdout (and nothing else; the rest on stderr).")
    ] = False,
) -> None:
    """Analyse a run: saturation point, bottleneck with evidence, goodput; write summary.json, stages.csv and
    report.html."""
    from satscope._owner import mark_if_abandoned
    from satscope.reports import ReportSettings, build_report

    ReportSettings.parse(warmup, percentiles)  # a bad flag is a one-line error before the run is read
    if mark_if_abandoned(run_dir):
        typer.echo(f"note: {run_dir} was left `running` by a process that is gone; marked abandoned", err=True)
    result = build_report(run_dir, out=out, slos=slo or None, window_s=window, warmup_s=warmup,
                          percentiles=percentiles)
    typer.echo(result.verdict, err=as_json)
    typer.echo(f"report: {result.html_path}", err=as_json)
    typer.echo(f"summary: {result.summary_path}", err=as_json)
    if as_json:
        typer.echo(result.summary_path.read_text().rstrip("\n"))


def compare(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="The run before the change.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The run after the change.")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default RUN_B/compare.html).")] = None,
    slo: Annotated[list[str] | None, typer.Option(help="SLO for goodput, as for `satscope report`.")] = None,
) -> None:
    """Overlay two runs (before / after a change) and spell out the differences."""
    from satscope.reports import compare_runs

    result = compare_runs(run_a, run_b, out=out, slos=slo or None)
    for line in result.differences:
        typer.echo(line)
    typer.echo(f"comparison: {result.html_path}")
