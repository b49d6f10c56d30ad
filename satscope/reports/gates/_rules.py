"""Gate rules: parsed from a TOML file into validated dataclasses.

A rules file holds `[[rule]]` tables, each naming a `metric` path into `summary.json` and one
check: an absolute bound (`min` / `max`) or a regression bound against a baseline run
(`max_regression`, a relative change such as 0.05 for 5 %). An optional `[gate]` table sets the
bootstrap used to judge regressions against run-to-run noise. See docs/ci.md.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satscope.reports.gates._errors import GateInputError
from satscope.reports.gates._paths import parse_path

__all__ = ["GateConfig", "GateInputError", "Rule", "load_rules", "parse_rules"]

_RULE_KEYS = {"name", "metric", "min", "max", "max_regression", "better"}
_GATE_KEYS = {"confidence", "bootstrap_samples", "seed"}
# Metric-name endings that mean "lower is better"; everything else is a rate where higher is better.
_LOWER_IS_BETTER = ("_s", "error_rate", "_dropped", "requests_failed")


@dataclass(slots=True, frozen=True)
class Rule:
    """One check over one metric path of `summary.json`."""

    name: str
    metric: str
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None
    better: str = "higher"

    def __post_init__(self) -> None:
        if self.min is None and self.max is None and self.max_regression is None:
            raise GateInputError(f"rule {self.name!r} has no check", "give min, max or max_regression")
        if self.better not in ("higher", "lower"):
            raise GateInputError(f"rule {self.name!r}: better must be 'higher' or 'lower', not {self.better!r}")
        if self.max_regression is not None and not 0 <= self.max_regression < 1:
            raise GateInputError(
                f"rule {self.name!r}: max_regression={self.max_regression} is not a fraction",
                "use e.g. 0.05 for 5 %",
            )
        parse_path(self.metric)  # raises on a malformed path

    @property
    def is_regression(self) -> bool:
        return self.max_regression is not None


@dataclass(slots=True, frozen=True)
class GateConfig:
    """How regressions are judged against noise."""

    confidence: float = 0.95
    bootstrap_samples: int = 2000
    seed: int = 0
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise GateInputError(f"[gate] confidence={self.confidence} is out of range", "use 0.5 ≤ c < 1, e.g. 0.95")
        if not 100 <= self.bootstrap_samples <= 100_000:
            raise GateInputError(
                f"[gate] bootstrap_samples={self.bootstrap_samples} is out of range", "use 100 to 100000"
            )
        if not self.rules:
            raise GateInputError("the rules file has no [[rule]]", "add at least one [[rule]] table")


def _number(rule_name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GateInputError(f"rule {rule_name!r}: {key} must be a finite number, not {value!r}")
    return float(value)


def _default_better(metric: str) -> str:
    """Latencies (`..._s`, `percentiles.ttft_s.p99`) and error figures: lower; rates: higher."""
    keys = [part.split("[", 1)[0] for part in metric.split(".")]
    leaf = keys[-1]
    if leaf.endswith("_per_s"):
        return "higher"
    if leaf.endswith(_LOWER_IS_BETTER) or (len(keys) > 1 and leaf[:1] == "p" and keys[-2].endswith("_s")):
        return "lower"
    return "higher"


def _rule(index: int, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise GateInputError(f"rule #{index + 1} is not a table", "write each rule as a [[rule]] table")
    unknown = set(raw) - _RULE_KEYS
    name = str(raw.get("name") or raw.get("metric") or f"rule #{index + 1}")
    if unknown:
        raise GateInputError(f"rule {name!r}: unknown key(s) {sorted(unknown)}", f"allowed: {sorted(_RULE_KEYS)}")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise GateInputError(f"rule {name!r} has no metric", 'add metric = "saturation.output_tokens_per_s"')
    bounds = {k: _number(name, k, raw[k]) for k in ("min", "max", "max_regression") if k in raw}
    return Rule(name=name, metric=metric, better=str(raw.get("better", _default_better(metric))), **bounds)


def parse_rules(data: dict[str, Any]) -> GateConfig:
    """Validate an already-parsed rules document."""
    gate = data.get("gate", {})
    if not isinstance(gate, dict) or set(gate) - _GATE_KEYS:
        raise GateInputError("[gate] has unknown keys", f"allowed: {sorted(_GATE_KEYS)}")
    unknown_top = set(data) - {"gate", "rule"}
    if unknown_top:
        raise GateInputError(f"unknown top-level key(s) {sorted(unknown_top)}", "use [gate] and [[rule]] tables")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise GateInputError("`rule` must be an array of tables", "write [[rule]], not [rule]")
    rules = tuple(_rule(i, raw) for i, raw in enumerate(raw_rules))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GateInputError(f"duplicate rule names {dupes}", "give each rule a distinct name")
    return GateConfig(
        confidence=_number("[gate]", "confidence", gate.get("confidence", 0.95)),
        bootstrap_samples=int(_number("[gate]", "bootstrap_samples", gate.get("bootstrap_samples", 2000))),
        seed=int(_number("[gate]", "seed", gate.get("seed", 0))),
        rules=rules,
    )


def load_rules(path: str | Path) -> GateConfig:
    """Read and validate a rules TOML file; every problem is a one-line :class:`GateInputError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GateInputError(f"rules file {p} does not exist", "pass --rules PATH to a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateInputError(f"rules file {p} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateInputError(f"rules file {p} is not valid TOML: {exc}") from None
    return parse_rules(data)
