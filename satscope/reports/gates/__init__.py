"""CI performance gates over a run's `summary.json`: absolute thresholds and noise-aware regressions.

`run_gate(run_dir, rules_path, baseline_dir=None)` returns a :class:`GateResult`; its outputs
(terminal table, JUnit XML, markdown, JSON) are in `satscope.reports.gates` too. Unusable input raises
:class:`GateInputError` (a ``SatscopeError``: exit code 2 on the command line).
"""

from __future__ import annotations

from pathlib import Path

from satscope.reports.gates._evaluate import GateResult, RuleResult, evaluate
from satscope.reports.gates._outputs import append_step_summary, print_table, to_json, to_junit, to_markdown
from satscope.reports.gates._paths import PathError
from satscope.reports.gates._rules import GateConfig, GateInputError, Rule, load_rules, parse_rules

__all__ = [
    "GateConfig",
    "GateInputError",
    "GateResult",
    "PathError",
    "Rule",
    "RuleResult",
    "append_step_summary",
    "evaluate",
    "load_rules",
    "parse_rules",
    "print_table",
    "run_gate",
    "to_json",
    "to_junit",
    "to_markdown",
]


def run_gate(
    run_dir: str | Path, rules_path: str | Path, baseline_dir: str | Path | None = None, allow_invalid: bool = False
) -> GateResult:
    """Load the rules, evaluate them on ``run_dir`` (and ``baseline_dir``), return every outcome.

    A run whose summary says ``validity.ok: false`` fails unless ``allow_invalid``."""
    config = load_rules(rules_path)
    baseline = Path(baseline_dir) if baseline_dir is not None else None
    return evaluate(Path(run_dir), config, baseline, allow_invalid=allow_invalid)
