"""`satscope gate`: CI performance gate over a run's summary (exit 0 pass, 1 fail, 2 unusable input)."""

from __future__ import annotations

from pathlib import Path

import typer


def gate(
    run_dir: Path = typer.Argument(..., help="Run directory (runs/NAME) to judge."),
    rules: Path = typer.Option(..., "--rules", "-r", help="TOML rules file ([[rule]] tables; see docs/ci.md)."),
    baseline: Path | None = typer.Option(
        None, "--baseline", "-b", help="Baseline run directory for regression rules (max_regression)."
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML (one testcase per check) here."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the markdown summary here."),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON instead of a table."),
    allow_invalid: bool = typer.Option(
        False, "--allow-invalid", help="Judge a run whose own summary says it is invalid (validity.ok false)."
    ),
) -> None:
    """Judge a run against rules: thresholds and noise-aware regressions vs a baseline.

    Exit code 0 when every rule passes, 1 when any fails, 2 when the input is unusable (a missing
    run, a bad rules file, a corrupt run file). An invalid run fails unless --allow-invalid; a
    summary.json older than its run's files is rebuilt first. The markdown summary is appended to
    $GITHUB_STEP_SUMMARY when set.
    """
    from satscope._owner import mark_if_abandoned
    from satscope.reports.gates import append_step_summary, print_table, run_gate, to_json, to_junit, to_markdown
    from satscope.run_format import write_bytes_atomic

    for d in (run_dir, baseline):
        if d is not None and mark_if_abandoned(d):
            typer.echo(f"note: {d} was left `running` by a process that is gone; marked abandoned", err=True)
    result = run_gate(run_dir, rules, baseline, allow_invalid=allow_invalid)
    if json_out:
        typer.echo(to_json(result))
    else:
        print_table(result)
    if junit is not None:
        to_junit(result, junit)
    if markdown is not None:
        write_bytes_atomic(markdown, to_markdown(result).encode())
    append_step_summary(result)
    raise typer.Exit(0 if result.passed else 1)
