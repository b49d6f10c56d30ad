"""`satscope demo`, shortened: serve, load through the knee, report, verdict, and nothing left running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_short_demo_builds_a_report_with_a_verdict_and_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "satscope", "demo", "--duration", "30", "--users", "12", "--steps", "3",
           "--quiet", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    assert f"verdict: {summary['verdict']}" in proc.stdout
    assert proc.stdout.count(summary["verdict"]) == 1, "the verdict is printed once"
    assert str((out / "report.html").resolve()) in proc.stdout
    assert summary["run"]["requests_ok"] > 20 and summary["run"]["status"] == "complete"
    # the demo's small KV pool is what the server runs out of, and the report says so with evidence
    assert summary["bottleneck"]["kind"] == "kv_cache", summary["verdict"]
    evidence = {e["metric"]: e["value"] for e in summary["bottleneck"]["evidence"]}
    assert evidence["kv_cache_usage"] >= 0.8 and evidence["preemptions_per_s"] > 0, evidence
    assert "plotly" in html and "KV cache" in html
    # everything it started is stopped: the server's port no longer answers
    url = json.loads((out / "run.json").read_text())["target"]["url"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2.0)
