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


@pytest.mark.interpreter
def test_gpu_code_path_through_the_interpreter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The GPU branch (Triton timings, % of peak, speed-ups) exercised at tiny shapes, so that the
    # first GPU run does not find a Python error in it.
    from benchmarks import kernels

    device = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.setattr(kernels, "CPU_REPEATS", 1)  # interpreted kernels are slow; one timing is enough
    rows = kernels.bench(kernels.CPU_SHAPES, torch.float32, device, with_triton=True)
    assert [row.kernel for row in rows] == KERNELS
    assert all(row.triton_ms and row.triton_ms > 0 for row in rows)
    kernels.print_table(rows, kernels.peak_tbps("NVIDIA H100 80GB HBM3"))
    table = capsys.readouterr().out
    assert "% peak" in table and "prefill_attention" in table
    assert kernels.peak_tbps("NVIDIA H200") == 4.8 and kernels.peak_tbps("NVIDIA H100 PCIe") == 2.0
    assert kernels.peak_tbps("Some Future GPU") is None
