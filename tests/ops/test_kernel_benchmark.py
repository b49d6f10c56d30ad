"""benchmarks/kernels.py runs anywhere: without a GPU it times the torch references and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
KERNELS = [
    "rms_norm",
    "rms_norm+residual",
    "silu_and_mul",
    "apply_rope",
    "store_kvcache",
    "paged_decode_attention",
    "prefill_attention",
]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU run is benchmarks/gpu_check.sh's job")
def test_runs_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "kernels.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "kernels.py"), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no GPU: kernel timings skipped" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [row["kernel"] for row in rows] == KERNELS
    for row in rows:
        assert row["triton_ms"] is None and row["torch_ms"] > 0 and row["bytes_moved"] > 0
        assert row["kernel"] in result.stdout
