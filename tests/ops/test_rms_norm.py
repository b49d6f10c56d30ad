"""RMSNorm kernel (with and without the fused residual add) against its reference."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.ops.rms_norm import rms_norm_ref, rms_norm_triton
from tests.ops.compare import TOLERANCES, assert_close
from tests.ops.conftest import DEVICE, DTYPES

pytestmark = pytest.mark.interpreter

SHAPES = [(1, 1), (3, 7), (5, 123), (9, 41), (4, 256), (2, 1000)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, int], with_residual: bool, dtype: torch.dtype) -> None:
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    weight = torch.randn(shape[1], device=DEVICE, dtype=dtype)
    residual = torch.randn(shape, device=DEVICE, dtype=dtype) if with_residual else None
    x_before = x.clone()
    got = rms_norm_triton(x, weight, 1e-6, residual)
    expected = rms_norm_ref(x, weight, 1e-6, residual)
    if with_residual:
        assert_close(got[0], expected[0], TOLERANCES[dtype], "normed")
        # fp32: the same single rounding of x + residual; low precision may round it differently on a GPU.
        exact = (0.0, 0.0) if dtype == torch.float32 else TOLERANCES[dtype]
        assert_close(got[1], expected[1], exact, "new residual")
    else:
        assert_close(got, expected, TOLERANCES[dtype], "normed")
    assert torch.equal(x, x_before), "the input must not be modified"


def test_strided_rows() -> None:
    # Rows of a wider buffer (stride(0) > H), as when x is a slice of a fused projection.
    wide = torch.randn(6, 50, device=DEVICE)
    x = wide[:, :37]
    weight = torch.randn(37, device=DEVICE)
    assert_close(rms_norm_triton(x, weight, 1e-5), rms_norm_ref(x, weight, 1e-5), TOLERANCES[torch.float32])


def test_reference_is_rms_norm() -> None:
    x = torch.tensor([[3.0, 4.0]])
    out = rms_norm_ref(x, torch.tensor([1.0, 2.0]), 0.0)
    rms = (12.5) ** 0.5
    assert_close(out, torch.tensor([[3.0 / rms, 8.0 / rms]]), (1e-6, 1e-6))


def test_rejects_wrong_weight_shape() -> None:
    with pytest.raises(AssertionError, match="weight"):
        rms_norm_triton(torch.randn(2, 8, device=DEVICE), torch.randn(7, device=DEVICE), 1e-6)
