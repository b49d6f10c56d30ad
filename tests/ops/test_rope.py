"""RoPE kernel (rotate-half, in place on q and k) against its reference."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.ops.rope import apply_rope_ref, apply_rope_triton
from tests.ops.compare import TOLERANCES, assert_close
from tests.ops.conftest import DEVICE, DTYPES

pytestmark = pytest.mark.interpreter

MAX_POS = 64
# (tokens, q heads, kv heads, head dim): odd token counts and head counts, GQA, non-power-of-2 dims.
SHAPES = [(1, 1, 1, 2), (5, 4, 1, 8), (7, 8, 2, 16), (3, 6, 3, 10), (4, 32, 8, 128)]


def _cos_sin(head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(MAX_POS, dtype=torch.float32), inv_freq)
    return angles.cos().to(DEVICE, dtype), angles.sin().to(DEVICE, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, int, int, int], dtype: torch.dtype) -> None:
    tokens, hq, hkv, dim = shape
    # q and k as views into one fused qkv projection, the way a model produces them (strided rows).
    qkv = torch.randn(tokens, (hq + 2 * hkv) * dim, device=DEVICE, dtype=dtype)
    q = qkv[:, : hq * dim].view(tokens, hq, dim)
    k = qkv[:, hq * dim : (hq + hkv) * dim].view(tokens, hkv, dim)
    positions = torch.randint(0, MAX_POS, (tokens,), device=DEVICE)
    cos, sin = _cos_sin(dim, dtype)
    q_ref, k_ref = q.clone(), k.clone()
    v_before = qkv[:, (hq + hkv) * dim :].clone()
    apply_rope_ref(q_ref, k_ref, positions, cos, sin)
    apply_rope_triton(q, k, positions, cos, sin)
    assert_close(q, q_ref, TOLERANCES[dtype], "q")
    assert_close(k, k_ref, TOLERANCES[dtype], "k")
    assert torch.equal(qkv[:, (hq + hkv) * dim :], v_before), "v's part of qkv must be untouched"


def test_reference_rotates_half() -> None:
    # A 90-degree rotation at position 1 maps [x1, x2] to [-x2, x1]; position 0 is the identity.
    cos = torch.tensor([[1.0], [0.0]])
    sin = torch.tensor([[0.0], [1.0]])
    q = torch.tensor([[[1.0, 2.0]], [[1.0, 2.0]]])
    k = q.clone()
    apply_rope_ref(q, k, torch.tensor([0, 1]), cos, sin)
    assert q.tolist() == [[[1.0, 2.0]], [[-2.0, 1.0]]]
    assert torch.equal(q, k)
