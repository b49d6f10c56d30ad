"""Backend selection (env override, defaults, errors) and the package's public names."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import satscope.server_under_test.ops as ops
from satscope.errors import SatscopeError
from satscope.server_under_test.ops._backend import backend, select_backend


@pytest.fixture
def fresh_backend() -> Iterator[None]:
    backend.cache_clear()
    yield
    backend.cache_clear()


def test_public_names() -> None:
    assert ops.__all__ == sorted(ops.__all__)
    assert set(ops.__all__) == {
        "apply_rope",
        "backend",
        "paged_decode_attention",
        "prefill_attention",
        "rms_norm",
        "silu_and_mul",
        "store_kvcache",
    }


@pytest.mark.parametrize(
    ("override", "cuda", "interpret", "expected"),
    [
        (None, True, False, "triton"),
        (None, False, False, "torch"),
        (None, False, True, "torch"),
        ("", True, False, "triton"),
        ("torch", True, False, "torch"),
        (" Triton ", True, False, "triton"),
        ("triton", False, True, "triton"),
    ],
)
def test_select_backend(override: str | None, cuda: bool, interpret: bool, expected: str) -> None:
    assert select_backend(override, cuda_available=cuda, interpret=interpret) == expected


def test_bad_value_is_an_error_with_a_fix() -> None:
    with pytest.raises(SatscopeError, match="SATSCOPE_KERNELS='cuda'") as info:
        select_backend("cuda", cuda_available=True, interpret=False)
    assert info.value.fix is not None and "torch, triton" in info.value.fix


def test_triton_without_gpu_or_interpreter_is_an_error() -> None:
    with pytest.raises(SatscopeError, match="needs a CUDA GPU") as info:
        select_backend("triton", cuda_available=False, interpret=False)
    assert "TRITON_INTERPRET=1" in (info.value.fix or "")


def test_backend_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    monkeypatch.setenv("SATSCOPE_KERNELS", "torch")
    assert backend() == "torch"
    monkeypatch.setenv("SATSCOPE_KERNELS", "bogus")
    assert backend() == "torch", "the choice is fixed for the process after the first call"
    backend.cache_clear()
    with pytest.raises(SatscopeError):
        backend()


def test_dispatch_follows_the_backend(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    import torch

    monkeypatch.setenv("SATSCOPE_KERNELS", "torch")
    x = torch.randn(3, 8)
    assert torch.equal(ops.silu_and_mul(x), ops.silu_mul.silu_and_mul_ref(x))


@pytest.mark.interpreter
def test_dispatch_reaches_the_triton_kernels(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    import torch

    from satscope.server_under_test.ops.rms_norm import rms_norm_triton
    from tests.ops.conftest import DEVICE

    monkeypatch.setenv("SATSCOPE_KERNELS", "triton")
    x, w = torch.randn(3, 8, device=DEVICE), torch.randn(8, device=DEVICE)
    assert ops.backend() == "triton"
    # Triton's fp32 sum order differs from torch's: bit equality with the kernel, not the reference.
    assert torch.equal(ops.rms_norm(x, w, 1e-6), rms_norm_triton(x, w, 1e-6))


def test_importing_the_ops_needs_no_gpu() -> None:
    # A fresh interpreter without TRITON_INTERPRET: the kernels are compiled-mode JITFunctions and
    # nothing may query a driver at import time.
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    code = "import satscope.server_under_test.ops as ops; print(ops.backend())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch"
