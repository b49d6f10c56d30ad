"""Causal prefill attention over a packed variable-length batch, reading K/V from the paged cache.

The new tokens' K/V are stored in the cache first, so earlier context (chunked prefill, recompute
after preemption) and the new tokens are read the same way. Query i of sequence b, with
q_len = cu_seqlens_q[b+1] - cu_seqlens_q[b], sits at position context_lens[b] - q_len + i and attends
to positions 0..that position. ``prefill_attention_ref`` runs torch's scaled_dot_product_attention per
sequence with an explicit causal mask (the truth, and the CPU path).

``prefill_attention_triton`` launches ``_prefill_attention_kernel`` with one program per
(query tile, sequence, query head): flash-attention style, fp32 online softmax, keys gathered from
the paged cache through the block table, and the key loop stops at the tile's last causal position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

__all__ = ["prefill_attention_ref", "prefill_attention_triton"]

LOG2E = 1.4426950408889634
BLOCK_M = 64
BLOCK_N = 64


def prefill_attention_ref(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """q [T, Hq, D]; cu_seqlens_q int32 [B+1]; context_lens int32 [B]. Returns [T, Hq, D]."""
    block_size = k_cache.shape[1]
    out = torch.zeros_like(q)
    starts = cu_seqlens_q.tolist()
    contexts = context_lens.tolist()
    for b, context in enumerate(contexts):
        start, end = starts[b], starts[b + 1]
        q_len = end - start
        if q_len == 0:
            continue
        blocks = block_tables[b, : -(-context // block_size)].long()
        # [1, H, L, D] as SDPA wants; fp32 so the reference is the accurate side of every comparison.
        k = k_cache[blocks].flatten(0, 1)[:context].transpose(0, 1).unsqueeze(0).float()
        v = v_cache[blocks].flatten(0, 1)[:context].transpose(0, 1).unsqueeze(0).float()
        qs = q[start:end].transpose(0, 1).unsqueeze(0).float()
        query_pos = torch.arange(context - q_len, context, device=q.device)
        mask = torch.arange(context, device=q.device)[None, :] <= query_pos[:, None]
        o = F.scaled_dot_product_attention(qs, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out[start:end] = o.squeeze(0).transpose(0, 1).to(q.dtype)
    return out


@triton.jit
def _prefill_attention_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    cu_seqlens_ptr,
    context_lens_ptr,
    out_ptr,
    scale_log2e,
    stride_qt,
    stride_qh,
    stride_cache_block,
    stride_cache_slot,
    stride_cache_head,
    stride_bt,
    stride_ot,
    stride_oh,
    group,
    head_dim,
    BLOCK_M: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    tile = tl.program_id(0)
    seq = tl.program_id(1).to(tl.int64)
    head = tl.program_id(2)
    kv_head = head // group
    q_start = tl.load(cu_seqlens_ptr + seq)
    q_len = tl.load(cu_seqlens_ptr + seq + 1) - q_start
    context = tl.load(context_lens_ptr + seq)

    offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = offs_m < q_len
    query_pos = context - q_len + offs_m
    d = tl.arange(0, BLOCK_D)
    dmask = d < head_dim
    q_rows = (q_start + offs_m).to(tl.int64)
    q = tl.load(
        q_ptr + q_rows[:, None] * stride_qt + head * stride_qh + d[None, :],
        mask=mmask[:, None] & dmask[None, :],
        other=0.0,
    )
    # Keys past the tile's last query position are causally masked for every row: stop there.
    # Tiles wholly past this sequence's queries (the grid fits the longest one) do no work.
    last_row = tl.minimum((tile + 1) * BLOCK_M, q_len)
    end = tl.where(tile * BLOCK_M < q_len, context - q_len + last_row, 0)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for n0 in range(0, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        nmask = offs_n < end
        block_ids = tl.load(block_tables_ptr + seq * stride_bt + offs_n // BLOCK_SIZE, mask=nmask, other=0).to(tl.int64)
        rows = block_ids * stride_cache_block + (offs_n % BLOCK_SIZE) * stride_cache_slot
        rows += kv_head * stride_cache_head
        kv_mask = nmask[:, None] & dmask[None, :]
        k = tl.load(k_cache_ptr + rows[:, None] + d[None, :], mask=kv_mask, other=0.0)
        # "ieee": fp32 inputs stay fp32 (TF32 would drift from the reference); bf16/fp16 are unaffected.
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale_log2e
        s = tl.where(nmask[None, :] & (offs_n[None, :] <= query_pos[:, None]), s, float("-inf"))
        # Key 0 is visible to every row (positions are >= 0), so each row's max is finite after the
        # first tile; a later tile that a row cannot see contributes exp2(-inf) = 0.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + rows[:, None] + d[None, :], mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        m_i = m_new

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(
        out_ptr + q_rows[:, None] * stride_ot + head * stride_oh + d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=mmask[:, None] & dmask[None, :],
    )


def prefill_attention_triton(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    max_seqlen_q: int | None = None,
) -> torch.Tensor:
    """Same contract as :func:`prefill_attention_ref`.

    ``max_seqlen_q`` (the longest q_len of the batch, known to the scheduler) sizes the grid; without
    it the wrapper reads it from ``cu_seqlens_q``, a device-to-host sync on every call (every layer).
    """
    assert q.dim() == 3, f"q must be [T, Hq, D], got {tuple(q.shape)}"
    num_tokens, num_q_heads, head_dim = q.shape
    assert k_cache.dim() == 4 and k_cache.shape == v_cache.shape, "caches must be equal [NB, BS, Hkv, D]"
    _, block_size, num_kv_heads, cache_dim = k_cache.shape
    assert cache_dim == head_dim, f"cache head dim {cache_dim} != q's {head_dim}"
    assert num_q_heads % num_kv_heads == 0, f"Hq={num_q_heads} is not a multiple of Hkv={num_kv_heads}"
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(3) == 1, "caches: same strides, packed dim"
    assert q.stride(-1) == 1, "q needs a contiguous head dim"
    assert q.dtype == k_cache.dtype == v_cache.dtype, "q and the caches must share a dtype"
    batch = context_lens.shape[0]
    assert context_lens.dtype == torch.int32 and context_lens.dim() == 1, "context_lens: int32 [B]"
    assert cu_seqlens_q.shape == (batch + 1,) and cu_seqlens_q.dtype == torch.int32, "cu_seqlens_q: int32 [B+1]"
    assert block_tables.dim() == 2 and block_tables.shape[0] == batch, "block_tables must be [B, max_blocks]"
    assert block_tables.dtype == torch.int32 and block_tables.stride(1) == 1, "block_tables: int32, packed rows"
    out = torch.empty_like(q)
    if batch == 0 or num_tokens == 0:
        return out
    max_q_len = max_seqlen_q if max_seqlen_q is not None else int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max())
    if max_q_len == 0:
        return out
    _prefill_attention_kernel[(triton.cdiv(max_q_len, BLOCK_M), batch, num_q_heads)](
        q,
        k_cache,
        v_cache,
        block_tables,
        cu_seqlens_q,
        context_lens,
        out,
        scale * LOG2E,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        num_q_heads // num_kv_heads,
        head_dim,
        BLOCK_M=BLOCK_M,
        BLOCK_SIZE=block_size,
        BLOCK_N=BLOCK_N,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        num_warps=4,
    )
    return out
