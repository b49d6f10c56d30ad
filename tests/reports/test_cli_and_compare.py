"""`satscope report` and `satscope compare` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from satscope.reports import compare_runs
from satscope.reports._compare import differences
from tests.helpers import satscope_cli


def test_report_command_prints_verdict_and_paths(scratch_run: Callable[..., Path], tmp_path: Path) -> None:
    run = scratch_run(kind="batch_limit")
    out = tmp_path / "nested" / "out.html"
    proc = satscope_cli("report", str(run), "--out", str(out), "--slo", "ttft=0.5", "--slo", "itl=50ms")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Saturates at 8 users") and "batch limit" in lines[0]
    assert lines[1] == f"report: {out}"
    assert out.stat().st_size > 1_000_000  # plotly.js is inside
    summary = json.loads((run / "summary.json").read_text())
    assert summary["slos"] == {"ttft_s": 0.5, "itl_s": 0.05, "e2e_s": None}


def test_report_command_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = satscope_cli("report", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "run.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = satscope_cli("report", str(tmp_path), "--slo", "latency=1")
    assert proc.returncode == 2 and "unknown SLO" in proc.stderr


def test_compare_spells_out_the_differences(synth: Callable[..., Path], tmp_path: Path) -> None:
    result = compare_runs(synth(kind="kv_cache"), synth(kind="none"), out=tmp_path / "c.html")
    text = "\n".join(result.differences)
    assert "bottleneck changed: KV cache → none" in text
    assert "peak output tokens/s: 345" in text and "better" in text
    html = result.html_path.read_text()
    assert "Differences, A → B" in html and 'id="fig-throughput"' in html


def test_compare_command(synth: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    proc = satscope_cli("compare", str(synth(kind="kv_cache")), str(synth(kind="batch_limit")), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "bottleneck changed: KV cache → scheduler batch limit" in proc.stdout
    assert proc.stdout.strip().endswith(f"comparison: {out}") and out.exists()


def test_differences_judge_direction() -> None:
    def summary(tps: float, ttft: float) -> dict:
        return {
            "bottleneck": {"kind": "kv_cache", "label": "KV cache"},
            "saturation": {
                "found": True,
                "offered_load": 8.0,
                "output_tokens_per_s": tps,
                "requests_per_s": None,
                "ttft_p99_s": ttft,
                "itl_p99_s": None,
                "peak_output_tokens_per_s": None,
            },
            "goodput": {"best_goodput_per_s": None},
            "percentiles": {"ttft_s": {"p99": None}, "itl_s": {"p99": None}},
        }

    diffs = differences(summary(100.0, 0.2), summary(120.0, 0.3))
    assert "output tokens/s at saturation: 100.0 → 120.0 (+20.0%), better" in diffs
    assert "TTFT p99 at saturation (s): 0.200 → 0.300 (+50.0%), worse" in diffs
    assert "offered load at saturation: 8 → 8 (+0.0%), about the same" in diffs
