"""`satscope run --shape search`: flags that do not fit a search are one line, exit 2, before any load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loadgen.conftest import run_satscope


@pytest.mark.parametrize(
    "args, message",
    [
        (["--users", "8", "--precision", "0.2"], "--precision is only used with --shape search, not --shape constant"),
        (["--users", "8", "--budget", "30"], "--budget is only used with --shape search"),
        (["--users", "8", "--shape", "step", "--precision", "0.2"], "--precision is only used with --shape search"),
        (["--users", "8", "--shape", "search", "--steps", "3"], "--steps is only used with --shape step, not --shape "),
        (["--users", "8", "--shape", "search", "--precision", "0"], "--precision must be > 0, got 0"),
        (["--users", "8", "--shape", "search", "--precision", "-0.1"], "--precision must be > 0, got -0.1"),
        (["--users", "8", "--shape", "search", "--start-load", "16"], "--start-load 16 is above the search's maximum"),
        (["--users", "8", "--shape", "search", "--start-load", "0"], "--start-load must be > 0 for a search"),
        (["--users", "8", "--shape", "search", "--budget", "10", "--stage-duration", "20"], "--budget 10 s is shorter"),
        (["--users", "8", "--shape", "search", "--duration", "60", "--budget", "30"], "give --duration or --budget"),
        (["--users", "1,2,4", "--shape", "search"], "a list of loads (--users) makes one stage per value"),
        (["--rate", "8", "--shape", "search", "--start-load", "16"], "above the search's maximum --rate 8"),
        (["--users", "8", "--shape", "search", "--slo-attainment", "0.9"], "--slo-attainment is the share of requests"),
        (["--users", "8", "--slo", "ttft=1", "--slo-attainment", "0.9"], "--slo-attainment is only used with --shape"),
        (["--users", "8", "--shape", "search", "--slo", "ttft=1", "--slo-attainment", "1.5"], "must be in (0, 1]"),
        (["--users", "8", "--shape", "search", "--amplitude", "2"], "--amplitude is only used with --shape sine"),
    ],
)
def test_bad_search_flags_are_one_line_before_any_load(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    res = run_satscope("--target", "http://127.0.0.1:9", *args, "--out", str(out), timeout=60)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert message in lines[0] and "(" in lines[0], lines[0]  # the fix in parentheses
    assert "Traceback" not in res.stderr and not out.exists()
