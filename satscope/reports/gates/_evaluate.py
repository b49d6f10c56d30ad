"""Evaluate gate rules over a run's summary, and regressions against a baseline run's."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from satscope.reports.gates._errors import GateInputError
from satscope.reports.gates._noise import bootstrap_relative_change, load_rows, sample_for
from satscope.reports.gates._paths import Resolved, resolve
from satscope.reports.gates._rules import GateConfig, Rule
from satscope.run_format import MANIFEST_FILE, PROBES_FILE, REQUESTS_FILE, SAMPLES_FILE, SUMMARY_FILE, TOKENS_FILE

__all__ = ["GateResult", "RuleResult", "evaluate", "load_summary"]


@dataclass(slots=True)
class RuleResult:
    """The outcome of one rule on one value (a `[*]` rule gives one result per item)."""

    rule: str
    metric: str
    passed: bool
    value: float | None
    expected: str
    message: str
    baseline: float | None = None
    change: float | None = None
    change_ci: tuple[float, float] | None = None
    skipped: bool = False  # a regression rule without a baseline run: reported, not judged


@dataclass(slots=True)
class GateResult:
    """Every rule's outcome; the gate passes when all do."""

    run_dir: str
    baseline_dir: str | None
    results: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "run_dir": self.run_dir,
            "baseline_dir": self.baseline_dir,
            "failed": sum(not r.passed for r in self.results),
            "skipped": sum(r.skipped for r in self.results),
            "rules": [asdict(r) for r in self.results],
        }


# the files a summary is computed from: one newer than summary.json makes it stale
_INPUT_FILES = (MANIFEST_FILE, REQUESTS_FILE, TOKENS_FILE, SAMPLES_FILE, PROBES_FILE)


def _stale(run_dir: Path, summary_path: Path) -> bool:
    made = summary_path.stat().st_mtime_ns
    return any((run_dir / f).exists() and (run_dir / f).stat().st_mtime_ns > made for f in _INPUT_FILES)


def _slos_of(path: Path) -> dict[str, float] | None:
    """The SLOs an old summary was computed with, so a rebuild judges goodput the same way."""
    try:
        slos = json.loads(path.read_text()).get("slos") or {}
        return {k.removesuffix("_s"): float(v) for k, v in slos.items() if isinstance(v, int | float)} or None
    except (OSError, ValueError, AttributeError):
        return None


def load_summary(run_dir: Path) -> dict[str, Any]:
    """`summary.json` of a run; analysed on the spot when the run has none, or one older than its
    files (the run files then decide: a corrupt one is the report's one-line error)."""
    if not run_dir.is_dir():
        raise GateInputError(f"run directory {run_dir} does not exist", "pass the runs/NAME directory")
    path = run_dir / SUMMARY_FILE
    if not path.exists() or _stale(run_dir, path):
        from satscope.reports import analyze

        return analyze(run_dir, slos=_slos_of(path) if path.exists() else None)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GateInputError(
            f"{path} is not readable JSON: {exc}", f"rebuild it with `satscope report {run_dir}`"
        ) from None
    if not isinstance(data, dict):
        raise GateInputError(f"{path} is not a JSON object", f"rebuild it with `satscope report {run_dir}`")
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


def _absolute(rule: Rule, got: Resolved) -> RuleResult:
    bounds = [f"≥ {_fmt(rule.min)}"] * (rule.min is not None) + [f"≤ {_fmt(rule.max)}"] * (rule.max is not None)
    expected = " and ".join(bounds)
    value = _number(got.value)
    if value is None:
        return RuleResult(rule.name, got.path, False, None, expected, f"{got.path} has no value in this run")
    ok = (rule.min is None or value >= rule.min) and (rule.max is None or value <= rule.max)
    verb = "within" if ok else "outside"
    return RuleResult(rule.name, got.path, ok, value, expected, f"{got.path} = {_fmt(value)}, {verb} {expected}")


def _regression(rule: Rule, got: Resolved, base: Resolved, config: GateConfig, rows: tuple | None) -> RuleResult:
    tol = float(rule.max_regression or 0.0)
    expected = f"no more than {tol:.1%} {'below' if rule.better == 'higher' else 'above'} baseline"
    value, ref = _number(got.value), _number(base.value)
    if value is None or ref is None or ref == 0:
        msg = f"{got.path}: candidate {_fmt(value)}, baseline {_fmt(ref)}: cannot compare"
        return RuleResult(rule.name, got.path, False, value, expected, msg, baseline=ref)
    change = value / ref - 1.0
    worse = -change if rule.better == "higher" else change
    ci: tuple[float, float] | None = None
    significant = True
    noise_note = "no noise model for this metric: judged on the point values"
    if rows is not None:
        cand = sample_for(rows[0], got.path, got.stage)
        basis = sample_for(rows[1], base.path, base.stage)
        if cand is not None and basis is not None:
            ci = bootstrap_relative_change(cand, basis, config.bootstrap_samples, config.confidence, config.seed)
            worse_lo = -ci[1] if rule.better == "higher" else ci[0]
            significant = math.isfinite(worse_lo) and worse_lo > 0
            noise_note = f"{config.confidence:.0%} CI of the change [{ci[0]:+.1%}, {ci[1]:+.1%}] ({cand.unit})"
    failed = worse > tol and significant
    verdict = "regression" if failed else ("within noise" if worse > tol else "ok")
    msg = f"{got.path}: {_fmt(value)} vs baseline {_fmt(ref)} ({change:+.1%}; {verdict}); {noise_note}"
    return RuleResult(rule.name, got.path, not failed, value, expected, msg, ref, change, ci)


def _validity(summary: dict[str, Any], allow_invalid: bool) -> RuleResult | None:
    """The run's own judgement of itself: an invalid run fails the gate unless allowed (None: valid)."""
    validity = summary.get("validity") if isinstance(summary.get("validity"), dict) else {}
    ok = validity.get("ok") is not False
    errors = [str(w.get("message")) for w in validity.get("warnings") or []
              if isinstance(w, dict) and w.get("severity") == "error"]
    if ok:
        return None
    why = "; ".join(errors) or "validity.ok is false"
    if allow_invalid:
        return RuleResult("run is valid", "validity.ok", True, 0.0, "true",
                          f"the run is invalid ({why}); judged anyway (--allow-invalid)")
    return RuleResult("run is valid", "validity.ok", False, 0.0, "true",
                      f"the run is invalid: {why}; its figures cannot be trusted (--allow-invalid judges it anyway)")


def evaluate(
    run_dir: Path, config: GateConfig, baseline_dir: Path | None = None, allow_invalid: bool = False
) -> GateResult:
    """Apply every rule of ``config`` to the run (and its baseline for regression rules), after the
    run's own validity check."""
    needs_baseline = any(r.is_regression for r in config.rules)
    summary = load_summary(run_dir)
    base_summary = load_summary(baseline_dir) if baseline_dir is not None else None
    rows = None
    if needs_baseline and base_summary is not None:
        try:
            rows = (load_rows(run_dir, summary), load_rows(baseline_dir, base_summary))
        except (OSError, ValueError, KeyError):
            rows = None  # no raw rows: regressions are judged on point values, and the message says so
    result = GateResult(str(run_dir), str(baseline_dir) if baseline_dir else None)
    validity = _validity(summary, allow_invalid)
    if validity is not None:
        result.results.append(validity)
    for rule in config.rules:
        for got in resolve(summary, rule.metric):
            if rule.min is not None or rule.max is not None:
                result.results.append(_absolute(rule, got))
            if rule.is_regression and base_summary is None:
                note = "skipped: no --baseline run to compare with"
                result.results.append(RuleResult(rule.name, got.path, True, _number(got.value), "vs baseline", note,
                                                 skipped=True))
            elif rule.is_regression:
                base = resolve(base_summary, got.path)[0]
                result.results.append(_regression(rule, got, base, config, rows))
    return result
