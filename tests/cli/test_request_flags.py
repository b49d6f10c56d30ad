"""Bad ``--header``, ``--extra-body``, ``--max-requests``, ``--warmup``, ``--percentiles`` and ``--json``
input: one line on stderr with the fix, exit code 2, before any load and without a run directory
(the target, port 9, is never contacted); a header's value is never echoed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadgen.conftest import ROOT, run_satscope

SECRET = "sekrit-42"


def _refused(res: subprocess.CompletedProcess, out: Path, fragment: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in res.stderr and not out.exists()
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--header", f"X-Tenant={SECRET}"], "--header #1 has no colon: a header is NAME:VALUE"),
        (["--header", "X-A: 1", "--header", f": {SECRET}"], "--header #2 has an empty name"),
        (["--header", f"X Tenant: {SECRET}"], "'X Tenant' is not an HTTP header name"),
        (["--header", "Content-Type: text/plain"], "--header Content-Type: satscope sets this header itself"),
        (["--header", f"Authorization: Bearer {SECRET}", "--api-key", "k"], "both set the Authorization header"),
        (["--header", "X-A: 1", "--header", f"x-a: {SECRET}"], "--header x-a is given twice"),
        (["--extra-body", "{bad"], "--extra-body is not valid JSON"),
        (["--extra-body", '{"seed": NaN}'], "--extra-body is not valid JSON (NaN is not a JSON number)"),
        (["--extra-body", "[1, 2]"], "--extra-body must be a JSON object, not list"),
        (["--extra-body", '{"max_tokens": 8}'], "sets 'max_tokens', which satscope controls (use --output-len"),
        (["--extra-body", '{"stream": false}'], "(use --no-stream instead)"),
        (["--extra-body", '{"model": "m"}'], "(use --model instead)"),
        (["--extra-body", '{"messages": []}'], "(use --input-len or --dataset instead)"),
        (["--extra-body", '{"ignore_eos": false}'], "(use --no-ignore-eos instead)"),
        (["--max-requests", "0"], "--max-requests must be >= 1, got 0"),
        (["--max-requests", "10", "--workers", "3"], "--max-requests is shared by the 3 workers but at most 2 users"),
        (["--warmup", "-1"], "--warmup must be >= 0 seconds, got -1"),
        (["--warmup", "5", "--duration", "5"], "--warmup 5 leaves no load of the 5 s run"),
        (["--percentiles", "50,abc"], "--percentiles 'abc' is not a number"),
        (["--percentiles", "100"], "--percentiles 100: a level is a number between 0 and 100"),
        (["--percentiles", "99.9999"], "with at most 3 decimals"),
        (["--json", "--no-report"], "--json prints the report's summary (drop --no-report)"),
    ],
)
def test_bad_request_flags_are_one_line_before_any_load(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    res = run_satscope("--target", "http://127.0.0.1:9", "--users", "2", *args, "--out", str(out), timeout=60)
    line = _refused(res, out, message)
    assert SECRET not in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--percentiles", "0"], "--percentiles 0: a level is a number between 0 and 100"),
        (["--warmup", "-2"], "--warmup must be >= 0 seconds, got -2"),
    ],
)
def test_bad_report_flags_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    run_dir = tmp_path / "no-run"  # refused before the run is read: this one does not exist
    res = subprocess.run(
        [sys.executable, "-m", "satscope", "report", str(run_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _refused(res, run_dir, message)
