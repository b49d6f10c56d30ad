"""`satscope gate` on run directories: exit codes, outputs, and noise-aware regressions.

The runs are written by `satscope.reports._synthetic` exactly per docs/run-format.md and analysed by the
real `satscope.reports.analyze`; the command runs as a subprocess, as CI would call it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from satscope.reports._synthetic import SyntheticRun, write_synthetic_run

RULES = """
[gate]
bootstrap_samples = 1000

[[rule]]
name = "ttft p99 at 4 users"
metric = "stages[users-4].ttft_p99_s"
max = {ttft_max}

[[rule]]
name = "saturation throughput floor"
metric = "saturation.output_tokens_per_s"
min = 1

[[rule]]
name = "error rate"
metric = "run.error_rate"
max = 0.01
"""

REGRESSION = """
[[rule]]
name = "saturation throughput vs baseline"
metric = "saturation.output_tokens_per_s"
max_regression = 0.05

[[rule]]
name = "itl p99 per stage vs baseline"
metric = "stages[*].itl_p99_s"
max_regression = 0.10
"""


def _gate(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "satscope", "gate", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-runs")
    common = {"kind": "kv_cache", "levels": (1, 2, 4, 8, 16), "knee_load": 8, "stage_s": 8.0, "gpu": False}
    return {
        "a": write_synthetic_run(root / "a", SyntheticRun(seed=1, **common)),
        "b": write_synthetic_run(root / "b", SyntheticRun(seed=2, **common)),
        # the same server with every token 40 % slower: a real regression
        "slow": write_synthetic_run(root / "slow", SyntheticRun(seed=3, itl_s=0.028, **common)),
    }


def test_pass_and_fail_exit_codes_with_junit_and_markdown(runs: dict[str, Path], tmp_path: Path) -> None:
    ok_rules = tmp_path / "ok.toml"
    ok_rules.write_text(RULES.format(ttft_max=5.0))
    junit, summary_md = tmp_path / "gate.xml", tmp_path / "step-summary.md"
    passed = _gate(runs["a"], "--rules", ok_rules, "--junit", junit, env={"GITHUB_STEP_SUMMARY": str(summary_md)})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "gate passed" in passed.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == [
        "ttft p99 at 4 users [stages[users-4].ttft_p99_s]",
        "saturation throughput floor [saturation.output_tokens_per_s]",
        "error rate [run.error_rate]",
    ]
    assert suite.get("failures") == "0" and not suite.findall("testcase/failure")
    assert "satscope gate passed" in summary_md.read_text()

    bad_rules = tmp_path / "bad.toml"
    bad_rules.write_text(RULES.format(ttft_max=0.001))
    failed = _gate(runs["a"], "--rules", bad_rules, "--junit", junit, "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    verdict = json.loads(failed.stdout)
    assert verdict["passed"] is False and verdict["failed"] == 1
    (bad,) = [r for r in verdict["rules"] if not r["passed"]]
    assert bad["rule"] == "ttft p99 at 4 users" and bad["value"] > 0.001
    failures = ET.parse(junit).getroot().findall("testsuite/testcase/failure")
    assert len(failures) == 1 and "ttft_p99_s" in failures[0].get("message")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{missing}", "--rules", "{ok}"], "does not exist"),
        (["{a}", "--rules", "{missing}"], "does not exist"),
        (["{a}", "--rules", "{regression}", "--baseline", "{missing}"], "does not exist"),
        (["{a}", "--rules", "{badpath}"], "no item named 'users-999'"),
    ],
)
def test_unusable_input_exits_2_with_one_line(runs: dict[str, Path], tmp_path: Path, args: list, needle: str) -> None:
    files = {"ok": tmp_path / "ok.toml", "regression": tmp_path / "reg.toml", "badpath": tmp_path / "badpath.toml"}
    files["ok"].write_text(RULES.format(ttft_max=5.0))
    files["regression"].write_text(REGRESSION)
    files["badpath"].write_text('[[rule]]\nmetric = "stages[users-999].ttft_p99_s"\nmax = 1\n')
    names = {**{k: str(v) for k, v in files.items()}, "a": str(runs["a"]), "missing": str(tmp_path / "nope")}
    proc = _gate(*[a.format(**names) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_regression_rules_without_a_baseline_are_skipped_not_failed(runs: dict[str, Path], tmp_path: Path) -> None:
    rules, junit = tmp_path / "reg.toml", tmp_path / "gate.xml"
    rules.write_text(REGRESSION)
    proc = _gate(runs["a"], "--rules", rules, "--junit", junit, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["passed"] and verdict["skipped"] == len(verdict["rules"]) >= 2
    assert all("no --baseline" in r["message"] for r in verdict["rules"])
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("skipped") == str(verdict["skipped"])
    assert len(suite.findall("testcase/skipped")) == verdict["skipped"]


def test_two_runs_of_the_same_build_pass_against_each_other(runs: dict[str, Path], tmp_path: Path) -> None:
    rules = tmp_path / "reg.toml"
    rules.write_text(REGRESSION)
    for cand, base in (("a", "b"), ("b", "a")):
        proc = _gate(runs[cand], "--rules", rules, "--baseline", runs[base], "--json")
        verdict = json.loads(proc.stdout)
        assert proc.returncode == 0, json.dumps([r for r in verdict["rules"] if not r["passed"]], indent=1)
        sat = verdict["rules"][0]
        assert sat["change_ci"] is not None and sat["change_ci"][0] <= 0.0 <= sat["change_ci"][1] + 0.05


def test_a_slowed_down_build_fails_the_regression_rule(runs: dict[str, Path], tmp_path: Path) -> None:
    rules = tmp_path / "reg.toml"
    rules.write_text(REGRESSION)
    proc = _gate(runs["slow"], "--rules", rules, "--baseline", runs["a"], "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)
    sat = verdict["rules"][0]
    assert not sat["passed"] and sat["change"] < -0.05
    assert sat["change_ci"][1] < 0  # the whole interval is a drop: not noise
    itl = [r for r in verdict["rules"] if r["rule"] == "itl p99 per stage vs baseline"]
    assert itl and all(not r["passed"] and r["change"] > 0.10 for r in itl if r["value"] is not None)
