"""KV-store kernel against its reference: exact copies, padding skipped, other slots untouched."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.ops.kv_store import store_kvcache_ref, store_kvcache_triton
from tests.ops.conftest import DEVICE, DTYPES

pytestmark = pytest.mark.interpreter

# (tokens, kv heads, head dim, block size, num blocks)
SHAPES = [(1, 1, 2, 16, 4), (7, 2, 8, 16, 300), (13, 8, 10, 5, 97), (33, 4, 16, 16, 512)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, int, int, int, int], dtype: torch.dtype) -> None:
    tokens, hkv, dim, block_size, num_blocks = shape
    k = torch.randn(tokens, hkv, dim, device=DEVICE, dtype=dtype)
    v = torch.randn(tokens, hkv, dim, device=DEVICE, dtype=dtype)
    # Distinct slots scattered over the whole pool; about a quarter of the tokens are padding.
    slots = torch.randperm(num_blocks * block_size, device=DEVICE)[:tokens]
    slots[torch.rand(tokens, device=DEVICE) < 0.25] = -1
    caches = [torch.randn(num_blocks, block_size, hkv, dim, device=DEVICE, dtype=dtype) for _ in range(2)]
    k_ref, v_ref = (c.clone() for c in caches)
    k_cache, v_cache = (c.clone() for c in caches)
    store_kvcache_ref(k, v, k_ref, v_ref, slots)
    store_kvcache_triton(k, v, k_cache, v_cache, slots)
    assert torch.equal(k_cache, k_ref), f"k cache differs at {torch.nonzero(k_cache != k_ref)[:3].tolist()}"
    assert torch.equal(v_cache, v_ref), f"v cache differs at {torch.nonzero(v_cache != v_ref)[:3].tolist()}"
    stored = slots >= 0
    flat_k = k_cache.flatten(0, 1)
    assert torch.equal(flat_k[slots[stored]], k[stored]), "stored rows must be the new keys"
    untouched = torch.ones(num_blocks * block_size, dtype=torch.bool, device=DEVICE)
    untouched[slots[stored]] = False
    assert torch.equal(flat_k[untouched], caches[0].flatten(0, 1)[untouched]), "other slots must not change"


def test_rejects_int32_slots() -> None:
    k = torch.randn(2, 1, 4, device=DEVICE)
    cache = torch.zeros(2, 4, 1, 4, device=DEVICE)
    with pytest.raises(AssertionError, match="int64"):
        store_kvcache_triton(k, k, cache, cache.clone(), torch.tensor([0, 1], dtype=torch.int32, device=DEVICE))
