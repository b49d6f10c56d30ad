"""The gate's outputs: a terminal table, JUnit XML, a markdown summary and a JSON verdict."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from satscope.reports.gates._evaluate import GateResult
from satscope.run_format import write_bytes_atomic

__all__ = ["append_step_summary", "print_table", "to_json", "to_junit", "to_markdown"]


def _value(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def print_table(result: GateResult) -> None:
    """A rich table of every rule's outcome, then the overall verdict."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"satscope gate: {result.run_dir}"), show_lines=False)
    for col in ("rule", "metric", "value", "expected", "result"):
        table.add_column(col, overflow="fold")
    for r in result.results:
        verdict = "[yellow]SKIP[/yellow]" if r.skipped else "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        expected = r.expected if r.baseline is None else f"{r.expected} ({_value(r.baseline)})"
        # names like `stages[step-2]` are text, not markup
        table.add_row(escape(r.rule), escape(r.metric), _value(r.value), escape(expected), verdict)
    console = Console(soft_wrap=True)
    console.print(table, soft_wrap=False)
    for r in result.results:
        if not r.passed:
            console.print(f"[red]FAIL[/red] {escape(r.rule)}: {escape(r.message)}", markup=True, highlight=False)
    failed = sum(not r.passed for r in result.results)
    skipped = sum(r.skipped for r in result.results)
    if result.passed:
        extra = f", {skipped} skipped (no baseline)" if skipped else ""
        console.print(f"[green]gate passed[/green]: {len(result.results) - skipped} check(s){extra}")
    else:
        console.print(f"[red]gate failed[/red]: {failed} of {len(result.results)} check(s)")


def to_junit(result: GateResult, path: Path) -> Path:
    """JUnit XML: one <testcase> per check, a <failure> for each that failed."""
    failures = sum(not r.passed for r in result.results)
    skipped = sum(r.skipped for r in result.results)
    counts = {"tests": str(len(result.results)), "failures": str(failures)}
    suites = ET.Element("testsuites", name="satscope gate", **counts)
    suite = ET.SubElement(suites, "testsuite", name="satscope gate", errors="0", skipped=str(skipped), **counts)
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname="satscope.gate", name=f"{r.rule} [{r.metric}]")
        if r.skipped:
            ET.SubElement(case, "skipped", message=r.message)
        elif not r.passed:
            failure = ET.SubElement(case, "failure", message=r.message, type="GateFailure")
            failure.text = r.message
        out = ET.SubElement(case, "system-out")
        out.text = r.message
    data = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return write_bytes_atomic(path, data)


def to_markdown(result: GateResult) -> str:
    """A markdown table for CI job summaries."""
    head = "✅ **satscope gate passed**" if result.passed else "❌ **satscope gate failed**"
    lines = [head, "", "| rule | metric | value | expected | result | detail |", "|---|---|---|---|---|---|"]
    for r in result.results:
        outcome = "skipped" if r.skipped else "pass" if r.passed else "**FAIL**"
        cells = [r.rule, f"`{r.metric}`", _value(r.value), r.expected, outcome, r.message]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def append_step_summary(result: GateResult) -> bool:
    """Append the markdown to ``$GITHUB_STEP_SUMMARY`` when CI set it; True if written."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(to_markdown(result) + "\n")
    return True


def to_json(result: GateResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)
