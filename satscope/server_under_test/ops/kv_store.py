"""Store the new tokens' K and V into the paged KV cache through a slot mapping.

Cache layout [num_blocks, block_size, num_kv_heads, head_dim]; slot = block * block_size + offset;
slot -1 marks a padding token and is skipped. ``store_kvcache_ref`` is the truth and the CPU path;
``store_kvcache_triton`` launches ``_store_kvcache_kernel``, one program per token.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["store_kvcache_ref", "store_kvcache_triton"]


def store_kvcache_ref(
    k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """k, v [T, Hkv, D]; caches [NB, BS, Hkv, D]; slot_mapping int64 [T] (-1 = skip)."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    # flatten(0, 1) of a contiguous cache is a view, so the index_copy_ lands in the cache itself.
    k_cache.flatten(0, 1).index_copy_(0, slots, k[keep].to(k_cache.dtype))
    v_cache.flatten(0, 1).index_copy_(0, slots, v[keep].to(v_cache.dtype))


@triton.jit
def _store_kvcache_kernel(
    k_ptr,
    v_ptr,
    k_cache_ptr,
    v_cache_ptr,
    slot_ptr,
    stride_kt,
    stride_vt,
    row_elems,
    BLOCK: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + token).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    # A masked store instead of an early return: a padding token's row is empty, so nothing is written.
    mask = cols < tl.where(slot >= 0, row_elems, 0)
    k = tl.load(k_ptr + token * stride_kt + cols, mask=mask, other=0.0)
    v = tl.load(v_ptr + token * stride_vt + cols, mask=mask, other=0.0)
    tl.store(k_cache_ptr + slot * row_elems + cols, k.to(k_cache_ptr.dtype.element_ty), mask=mask)
    tl.store(v_cache_ptr + slot * row_elems + cols, v.to(v_cache_ptr.dtype.element_ty), mask=mask)


def store_kvcache_triton(
    k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Same contract as :func:`store_kvcache_ref`."""
    assert k.dim() == 3 and k.shape == v.shape, f"k, v must be equal [T, Hkv, D], got {k.shape}, {v.shape}"
    num_tokens, num_kv_heads, head_dim = k.shape
    assert k_cache.dim() == 4 and k_cache.shape == v_cache.shape, "caches must be equal [NB, BS, Hkv, D]"
    assert k_cache.shape[2:] == (num_kv_heads, head_dim), (
        f"cache heads/dim {tuple(k_cache.shape[2:])} != k's {(num_kv_heads, head_dim)}"
    )
    assert k_cache.is_contiguous() and v_cache.is_contiguous(), "caches must be contiguous"
    # Each token's [Hkv, D] is copied as one flat row, so heads and dims must be packed.
    for name, t in (("k", k), ("v", v)):
        assert t.stride(2) == 1 and t.stride(1) == head_dim, f"{name} must have packed [Hkv, D] rows"
    assert slot_mapping.shape == (num_tokens,), f"slot_mapping must be [{num_tokens}]"
    assert slot_mapping.dtype == torch.int64, "slot_mapping must be int64"
    if num_tokens == 0:
        return
    row_elems = num_kv_heads * head_dim
    _store_kvcache_kernel[(num_tokens,)](
        k,
        v,
        k_cache,
        v_cache,
        slot_mapping,
        k.stride(0),
        v.stride(0),
        row_elems,
        BLOCK=triton.next_power_of_2(row_elems),
        num_warps=4,
    )
