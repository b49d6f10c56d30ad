"""SiLU-and-multiply kernel against its reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satscope.server_under_test.ops.silu_mul import silu_and_mul_ref, silu_and_mul_triton
from tests.ops.compare import TOLERANCES, assert_close
from tests.ops.conftest import DEVICE, DTYPES

pytestmark = pytest.mark.interpreter

# Odd widths, and 1500 > the 1024-column tile so one row spans two programs.
SHAPES = [(1, 2), (3, 14), (5, 246), (9, 82), (2, 3000)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, int], dtype: torch.dtype) -> None:
    x = torch.randn(shape, device=DEVICE, dtype=dtype) * 3
    assert_close(silu_and_mul_triton(x), silu_and_mul_ref(x), TOLERANCES[dtype], "silu_and_mul")


def test_reference_is_swiglu() -> None:
    gate, up = torch.randn(4, 6), torch.randn(4, 6)
    expected = gate * torch.sigmoid(gate) * up
    assert_close(silu_and_mul_ref(torch.cat([gate, up], dim=1)), expected, (1e-6, 1e-6))
    assert_close(F.silu(gate) * up, expected, (1e-6, 1e-6))


def test_rejects_odd_width() -> None:
    with pytest.raises(AssertionError, match="even"):
        silu_and_mul_triton(torch.randn(2, 7, device=DEVICE))
