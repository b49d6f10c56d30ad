"""End to end: `satscope run --serve` against the bundled server, then the report it builds.

The server sleeps 30 ms per engine step (``--step-delay-ms``) so its speed does not hang on how
busy the shared CPU is; a step shape 1 → 8 users then saturates it through the KV pool (12
blocks: about two sequences) or through ``--max-num-seqs 2`` with an ample pool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

COMMON = [
    "--serve-arg=--preset=tiny",
    "--serve-arg=--step-delay-ms=30",
    "--shape",
    "step",
    "--users",
    "8",
    "--start-load",
    "1",
    "--steps",
    "4",
    "--duration",
    "40",
    "--input-len",
    "16",
    "--quiet",
    "--no-gpu",
]


def _run(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "satscope", "run", "--serve", *COMMON, *flags, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "run.json").read_text())
    assert (out / "summary.json").exists(), manifest["validity"]["notes"]
    assert (out / "report.html").stat().st_size > 1_000_000
    return json.loads((out / "summary.json").read_text())


def test_small_kv_pool_is_named_with_preemptions_as_evidence(tmp_path: Path) -> None:
    s = _run(tmp_path, "--serve-arg=--kv-blocks=12", "--output-len", "64")
    bn = s["bottleneck"]
    assert bn["kind"] == "kv_cache", s["verdict"]
    metrics = {e["metric"] for e in bn["evidence"]}
    assert "kv_cache_usage" in metrics
    assert max(st["preemptions_per_s"] or 0.0 for st in s["stages"]) > 0
    assert s["saturation"]["found"] and s["saturation"]["offered_load"] < 8


def test_small_batch_limit_is_named(tmp_path: Path) -> None:
    s = _run(tmp_path, "--serve-arg=--max-num-seqs=2", "--output-len", "32")
    bn = s["bottleneck"]
    assert bn["kind"] == "batch_limit", s["verdict"]
    ev = {e["metric"]: e["value"] for e in bn["evidence"]}
    assert ev["requests_running"] == pytest.approx(2.0, abs=0.2)
    assert ev["kv_cache_usage"] < 0.5
    assert s["saturation"]["found"] and s["saturation"]["offered_load"] < 8
