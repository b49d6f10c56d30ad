"""The GPU probe on a real NVIDIA GPU: DRAM bandwidth reads high under a copy loop (skipped without a GPU)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cuda_available() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    # In a subprocess: initialising CUDA here would tie this pytest process to the device.
    probe = subprocess.run([sys.executable, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"],
                           capture_output=True, timeout=120)
    return probe.returncode == 0


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="no NVIDIA GPU with a CUDA torch here")
def test_copy_loop_reads_high_dram_bandwidth() -> None:
    result = subprocess.run([sys.executable, "benchmarks/gpu_probe_check.py", "--seconds", "3"], cwd=REPO,
                            capture_output=True, text=True, timeout=240)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GPU probe check: PASSED" in result.stdout
