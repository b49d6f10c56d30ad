"""The tiny model generates exactly the same greedy tokens through the Triton kernels as through torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _generate(kernels: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SATSCOPE_KERNELS", "TRITON_INTERPRET")}
    env["SATSCOPE_KERNELS"] = kernels
    if kernels == "triton" and not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "tests.ops.greedy_tokens"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{kernels} generation failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.interpreter
def test_triton_kernels_generate_the_torch_tokens() -> None:
    reference = _generate("torch")
    kernels = _generate("triton")
    assert (reference["backend"], kernels["backend"]) == ("torch", "triton")
    for i, (want, got) in enumerate(zip(reference["tokens"], kernels["tokens"], strict=True)):
        assert got == want, f"prompt {i}: triton tokens {got} != torch tokens {want}"
    assert all(len(tokens) == 6 for tokens in reference["tokens"])
