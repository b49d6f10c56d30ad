"""`satscope gate` refuses what it cannot trust: invalid runs, stale summaries, corrupt run files;
and its table prints `stages[NAME]` paths as they are (brackets are not markup).

Runs are written by `satscope.reports._synthetic` per docs/run-format.md, analysed by the real
`satscope.reports.build_report`; the gate runs as a subprocess, as CI calls it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satscope.reports import build_report
from satscope.reports._synthetic import SyntheticRun, write_synthetic_run

RULES = """
[[rule]]
name = "ttft p99 per stage"
metric = "stages[*].ttft_p99_s"
max = 60

[[rule]]
name = "requests ok"
metric = "run.requests_ok"
min = {min_ok}
"""


def _gate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "satscope", "gate", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    spec = SyntheticRun(kind="kv_cache", levels=(1, 2, 4), knee_load=2, stage_s=4.0, gpu=False)
    out = write_synthetic_run(tmp_path / "run", spec)
    build_report(out)
    return out


def _rules(tmp_path: Path, min_ok: int = 1) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES.format(min_ok=min_ok))
    return path


def _touch_newer(path: Path, than: Path) -> None:
    later = than.stat().st_mtime + 2
    os.utime(path, (later, later))


def _rewrite_statuses(run: Path, status: str) -> int:
    table = pq.read_table(run / "requests.parquet")
    statuses = pa.array([status] * table.num_rows, table.schema.field("status").type)
    pq.write_table(table.set_column(table.schema.get_field_index("status"), "status", statuses),
                   run / "requests.parquet")
    return table.num_rows


def test_stage_names_in_brackets_are_printed_as_they_are(run: Path, tmp_path: Path) -> None:
    res = _gate(run, "--rules", _rules(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stages[users-2].ttft_p99_s" in res.stdout and "stages[users-4].ttft_p99_s" in res.stdout


def test_an_invalid_run_fails_unless_allowed(run: Path, tmp_path: Path) -> None:
    _rewrite_statuses(run, "http_error")  # nothing ended ok: the run says it measured nothing
    build_report(run)
    assert json.loads((run / "summary.json").read_text())["validity"]["ok"] is False
    rules = tmp_path / "count.toml"
    rules.write_text('[[rule]]\nname = "requests ok"\nmetric = "run.requests_ok"\nmin = 0\n')
    refused = _gate(run, "--rules", rules, "--json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    verdict = json.loads(refused.stdout)
    (bad,) = [r for r in verdict["rules"] if not r["passed"]]
    assert bad["metric"] == "validity.ok" and "none of the" in bad["message"] and "--allow-invalid" in bad["message"]
    table = _gate(run, "--rules", rules)
    assert table.returncode == 1 and "FAIL run is valid: the run is invalid: none of the" in table.stdout
    allowed = _gate(run, "--rules", rules, "--allow-invalid")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_a_stale_summary_is_rebuilt_from_the_run_files(run: Path, tmp_path: Path) -> None:
    summary = run / "summary.json"
    ok_before = json.loads(summary.read_text())["run"]["requests_ok"]
    rules = _rules(tmp_path, min_ok=ok_before)
    assert _gate(run, "--rules", rules).returncode == 0
    _rewrite_statuses(run, "timeout")  # the run files changed after the summary was written
    _touch_newer(run / "requests.parquet", summary)
    res = _gate(run, "--rules", rules, "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    got = {r["metric"]: r for r in json.loads(res.stdout)["rules"]}
    assert got["run.requests_ok"]["value"] == 0 and not got["validity.ok"]["passed"]


def test_a_stale_summary_beside_a_corrupt_run_file_is_refused_like_report(run: Path, tmp_path: Path) -> None:
    time.sleep(0.01)
    (run / "requests.parquet").write_bytes(b"PAR1 not really parquet")
    _touch_newer(run / "requests.parquet", run / "summary.json")
    gate = _gate(run, "--rules", _rules(tmp_path))
    report = subprocess.run([sys.executable, "-m", "satscope", "report", str(run)], capture_output=True, text=True,
                            timeout=120)
    assert gate.returncode == report.returncode == 2, gate.stdout + gate.stderr
    (line,) = gate.stderr.strip().splitlines()
    assert line == report.stderr.strip() and "requests.parquet is not a readable Parquet file" in line
