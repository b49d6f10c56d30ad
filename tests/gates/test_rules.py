"""Gate rules files: what parses, and the one-line errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from satscope.reports.gates import GateInputError, PathError, load_rules, parse_rules
from satscope.reports.gates._paths import resolve

GOOD = """
[gate]
confidence = 0.9
bootstrap_samples = 500

[[rule]]
name = "ttft p99 at s2"
metric = "stages[s2].ttft_p99_s"
max = 0.5

[[rule]]
metric = "saturation.output_tokens_per_s"
min = 100
max_regression = 0.05
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "perf.toml"
    path.write_text(text)
    return path


def test_good_rules_parse_with_defaults_and_direction(tmp_path: Path) -> None:
    config = load_rules(_write(tmp_path, GOOD))
    assert config.confidence == 0.9 and config.bootstrap_samples == 500
    first, second = config.rules
    assert (first.name, first.max, first.better) == ("ttft p99 at s2", 0.5, "lower")
    assert second.name == "saturation.output_tokens_per_s"  # the metric names an unnamed rule
    assert (second.min, second.max_regression, second.better) == (100.0, 0.05, "higher")
    assert second.is_regression and not first.is_regression


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[rule]]\nmetric = 'x'\n", "has no check"),
        ("[[rule]]\nmax = 1\n", "has no metric"),
        ("[[rule]]\nmetric = 'a.b'\nmax = 'high'\n", "must be a finite number"),
        ("[[rule]]\nmetric = 'a.b'\nmaxx = 1\n", "unknown key"),
        ("[[rule]]\nmetric = 'a..b'\nmax = 1\n", "malformed"),
        ("[[rule]]\nmetric = 'a'\nmax_regression = 5\n", "not a fraction"),
        ("[[rule]]\nmetric = 'a'\nmax = 1\nbetter = 'up'\n", "better must be"),
        ("[rule]\nmetric = 'a'\nmax = 1\n", "array of tables"),
        ("[gate]\nconfidence = 2\n[[rule]]\nmetric = 'a'\nmax = 1\n", "confidence"),
        ("[gate]\n", "no [[rule]]"),
        ("[[rule]]\nname='x'\nmetric='a'\nmax=1\n[[rule]]\nname='x'\nmetric='b'\nmax=1\n", "duplicate"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_rules_give_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(GateInputError) as info:
        load_rules(_write(tmp_path, text))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_rules_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(GateInputError, match="does not exist"):
        load_rules(tmp_path / "nope.toml")


SUMMARY = {
    "run": {"requests_total": 110, "requests_dropped": 10, "requests_failed": 5},
    "saturation": {"stage": "s2", "output_tokens_per_s": 120.0},
    "stages": [
        {"stage": "s1", "ttft_p99_s": 0.1},
        {"stage": "s2", "ttft_p99_s": 0.3},
        {"stage": "s3", "ttft_p99_s": None},
    ],
}


def test_paths_select_by_name_index_and_star() -> None:
    assert [r.value for r in resolve(SUMMARY, "stages[s2].ttft_p99_s")] == [0.3]
    assert [r.value for r in resolve(SUMMARY, "stages[0].ttft_p99_s")] == [0.1]
    star = resolve(SUMMARY, "stages[*].ttft_p99_s")
    assert [(r.path, r.value, r.stage) for r in star] == [
        ("stages[s1].ttft_p99_s", 0.1, "s1"),
        ("stages[s2].ttft_p99_s", 0.3, "s2"),
        ("stages[s3].ttft_p99_s", None, "s3"),
    ]
    # the saturation figure belongs to the saturation stage (the noise model needs it)
    assert resolve(SUMMARY, "saturation.output_tokens_per_s")[0].stage == "s2"
    # derived: failed / (total - dropped)
    assert resolve(SUMMARY, "run.error_rate")[0].value == pytest.approx(5 / 100)


@pytest.mark.parametrize(
    ("path", "needle"),
    [("stages[s9].ttft_p99_s", "no item named 's9'"), ("saturation.nope", "no 'saturation.nope'"),
     ("run[0].x", "not a list"), ("stages[7].ttft_p99_s", "only 3 item")],
)
def test_paths_that_name_nothing_fail_clearly(path: str, needle: str) -> None:
    with pytest.raises(PathError) as info:
        resolve(SUMMARY, path)
    assert needle in str(info.value)


def test_parse_rules_checks_paths_up_front() -> None:
    with pytest.raises(PathError):
        parse_rules({"rule": [{"metric": "stages[.x", "max": 1}]})


@pytest.mark.parametrize(
    ("metric", "better"),
    [
        ("saturation.output_tokens_per_s", "higher"),
        ("stages[s1].ttft_p99_s", "lower"),
        ("percentiles.e2e_s.p90", "lower"),
        ("percentiles.output_tokens.p50", "higher"),
        ("run.error_rate", "lower"),
        ("goodput.best_goodput_per_s", "higher"),
    ],
)
def test_direction_is_inferred_from_the_metric(metric: str, better: str) -> None:
    config = parse_rules({"rule": [{"metric": metric, "max_regression": 0.1}]})
    assert config.rules[0].better == better
