"""Paged decode attention: one query token per sequence against its K/V in the paged cache.

Cache layout [num_blocks, block_size, num_kv_heads, head_dim]; block_tables int32 [B, max_blocks]
map a sequence's logical blocks to physical ones; grouped-query attention (query head h reads KV
head h // (Hq // Hkv)). ``paged_decode_attention_ref`` gathers through the block table and runs
``scaled_dot_product_attention`` with a length mask (the truth, and the CPU path).

``paged_decode_attention_triton`` launches ``_paged_decode_kernel`` with one program per
(sequence, KV head, KV split): the program loads each K/V tile once for all the query heads of its
group, keeps an fp32 online softmax, and, when a long context is split over several programs
(split-KV, for small batches that would otherwise leave most of the GPU idle), writes partial
results that ``_combine_splits_kernel`` merges.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

__all__ = ["paged_decode_attention_ref", "paged_decode_attention_triton"]

LOG2E = 1.4426950408889634
BLOCK_N = 64
MAX_SPLITS = 32
MIN_TOKENS_PER_SPLIT = 256


def _gather_paged(cache: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """[B, Hkv, blocks * BS, D]: each sequence's blocks, head-major as attention wants them."""
    batch, num_blocks = tables.shape
    _, block_size, num_kv_heads, head_dim = cache.shape
    gathered = cache[tables].permute(0, 3, 1, 2, 4)  # [B, Hkv, blocks, BS, D]
    return gathered.reshape(batch, num_kv_heads, num_blocks * block_size, head_dim).float()


def paged_decode_attention_ref(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """q [B, Hq, D]; context_lens int32 [B] (≥ 1, current token included). Returns [B, Hq, D]."""
    batch, num_q_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    if batch == 0:
        return torch.empty_like(q)
    num_blocks = -(-int(context_lens.max()) // block_size)
    tables = block_tables[:, :num_blocks].long()
    lens = context_lens.long()[:, None]
    # Entries past a sequence's last block are arbitrary (possibly garbage): point them at block 0;
    # the positions they cover are masked out below.
    block_starts = torch.arange(num_blocks, device=q.device) * block_size
    tables = torch.where(block_starts[None, :] < lens, tables, 0)
    visible = torch.arange(num_blocks * block_size, device=q.device)[None, :] < lens  # [B, L]
    qg = q.float().reshape(batch, num_kv_heads, num_q_heads // num_kv_heads, head_dim)
    out = F.scaled_dot_product_attention(
        qg,
        _gather_paged(k_cache, tables),
        _gather_paged(v_cache, tables),
        attn_mask=visible[:, None, None, :],
        scale=scale,
    )
    return out.reshape(batch, num_q_heads, head_dim).to(q.dtype)


@triton.jit
def _paged_decode_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    context_lens_ptr,
    out_ptr,
    part_out_ptr,
    part_m_ptr,
    part_l_ptr,
    scale_log2e,
    stride_qb,
    stride_qh,
    stride_cache_block,
    stride_cache_slot,
    stride_cache_head,
    stride_bt,
    stride_ob,
    stride_oh,
    group,
    head_dim,
    tokens_per_split,
    NUM_SPLITS: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    seq = tl.program_id(0).to(tl.int64)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    context = tl.load(context_lens_ptr + seq)
    start = split * tokens_per_split
    end = tl.minimum(context, start + tokens_per_split)

    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, BLOCK_D)
    heads = kv_head * group + g
    gmask = g < group
    dmask = d < head_dim
    q = tl.load(
        q_ptr + seq * stride_qb + heads[:, None] * stride_qh + d[None, :],
        mask=gmask[:, None] & dmask[None, :],
        other=0.0,
    )

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        nmask = offs_n < end
        # int32 block ids become int64 before multiplying by the block stride: a large cache
        # (num_blocks * block_size * heads * dim) overflows 32 bits.
        block_ids = tl.load(block_tables_ptr + seq * stride_bt + offs_n // BLOCK_SIZE, mask=nmask, other=0).to(tl.int64)
        rows = block_ids * stride_cache_block + (offs_n % BLOCK_SIZE) * stride_cache_slot
        rows += kv_head * stride_cache_head
        kv_mask = nmask[:, None] & dmask[None, :]
        k = tl.load(k_cache_ptr + rows[:, None] + d[None, :], mask=kv_mask, other=0.0)
        # "ieee": fp32 inputs stay fp32 (TF32 would drift from the reference); bf16/fp16 are unaffected.
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale_log2e
        s = tl.where(nmask[None, :], s, float("-inf"))
        # Every tile holds at least one valid key (n0 < end), so m_new is finite from the first tile on.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + rows[:, None] + d[None, :], mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        m_i = m_new

    omask = gmask[:, None] & dmask[None, :]
    if NUM_SPLITS == 1:
        out = acc / l_i[:, None]
        tl.store(
            out_ptr + seq * stride_ob + heads[:, None] * stride_oh + d[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=omask,
        )
    else:
        # Partials are [B, Hq, NUM_SPLITS, (D)] fp32; an empty split leaves m = -inf, l = 0.
        part = (seq * (group * tl.num_programs(1)) + heads) * NUM_SPLITS + split
        tl.store(part_m_ptr + part, m_i, mask=gmask)
        tl.store(part_l_ptr + part, l_i, mask=gmask)
        tl.store(part_out_ptr + part[:, None] * head_dim + d[None, :], acc, mask=omask)


@triton.jit
def _combine_splits_kernel(
    part_out_ptr,
    part_m_ptr,
    part_l_ptr,
    out_ptr,
    stride_ob,
    stride_oh,
    num_q_heads,
    head_dim,
    NUM_SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    seq = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    sp = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    smask = sp < NUM_SPLITS
    base = (seq * num_q_heads + head) * NUM_SPLITS
    m = tl.load(part_m_ptr + base + sp, mask=smask, other=float("-inf"))
    l_s = tl.load(part_l_ptr + base + sp, mask=smask, other=0.0)
    acc = tl.load(
        part_out_ptr + (base + sp)[:, None] * head_dim + d[None, :],
        mask=smask[:, None] & (d[None, :] < head_dim),
        other=0.0,
    )
    m_max = tl.max(m, axis=0)
    w = tl.exp2(m - m_max)
    out = tl.sum(w[:, None] * acc, axis=0) / tl.sum(w * l_s, axis=0)
    tl.store(out_ptr + seq * stride_ob + head * stride_oh + d, out.to(out_ptr.dtype.element_ty), mask=d < head_dim)


def paged_decode_attention_triton(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    num_splits: int | None = None,
) -> torch.Tensor:
    """Same contract as :func:`paged_decode_attention_ref`; ``num_splits`` overrides the split-KV choice."""
    assert q.dim() == 3, f"q must be [B, Hq, D], got {tuple(q.shape)}"
    batch, num_q_heads, head_dim = q.shape
    assert k_cache.dim() == 4 and k_cache.shape == v_cache.shape, "caches must be equal [NB, BS, Hkv, D]"
    _, block_size, num_kv_heads, cache_dim = k_cache.shape
    assert cache_dim == head_dim, f"cache head dim {cache_dim} != q's {head_dim}"
    assert num_q_heads % num_kv_heads == 0, f"Hq={num_q_heads} is not a multiple of Hkv={num_kv_heads}"
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(3) == 1, "caches: same strides, packed dim"
    assert q.stride(-1) == 1, "q needs a contiguous head dim"
    assert q.dtype == k_cache.dtype == v_cache.dtype, "q and the caches must share a dtype"
    assert block_tables.dim() == 2 and block_tables.shape[0] == batch, "block_tables must be [B, max_blocks]"
    assert block_tables.dtype == torch.int32 and block_tables.stride(1) == 1, "block_tables: int32, packed rows"
    assert context_lens.shape == (batch,) and context_lens.dtype == torch.int32, "context_lens: int32 [B]"
    assert q.device == k_cache.device == block_tables.device == context_lens.device, "one device for all"
    out = torch.empty_like(q)
    if batch == 0:
        return out
    group = num_q_heads // num_kv_heads
    max_tokens = block_tables.shape[1] * block_size
    if num_splits is None:
        num_splits = _default_num_splits(batch * num_kv_heads, max_tokens, q.device)
    assert 1 <= num_splits <= MAX_SPLITS, f"num_splits must be in 1..{MAX_SPLITS}, got {num_splits}"
    tokens_per_split = triton.cdiv(triton.cdiv(max_tokens, num_splits), BLOCK_N) * BLOCK_N
    if num_splits > 1:
        part_m = torch.empty((batch, num_q_heads, num_splits), dtype=torch.float32, device=q.device)
        part_l = torch.empty_like(part_m)
        part_out = torch.empty((*part_m.shape, head_dim), dtype=torch.float32, device=q.device)
    else:
        part_m = part_l = part_out = out  # unused by the single-split kernel
    block_d = max(16, triton.next_power_of_2(head_dim))
    _paged_decode_kernel[(batch, num_kv_heads, num_splits)](
        q,
        k_cache,
        v_cache,
        block_tables,
        context_lens,
        out,
        part_out,
        part_m,
        part_l,
        scale * LOG2E,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        group,
        head_dim,
        tokens_per_split,
        NUM_SPLITS=num_splits,
        # tl.dot needs at least 16 rows; the padding rows of small groups are masked out.
        BLOCK_G=max(16, triton.next_power_of_2(group)),
        BLOCK_D=block_d,
        BLOCK_SIZE=block_size,
        BLOCK_N=BLOCK_N,
        num_warps=4,
    )
    if num_splits > 1:
        _combine_splits_kernel[(batch, num_q_heads)](
            part_out,
            part_m,
            part_l,
            out,
            out.stride(0),
            out.stride(1),
            num_q_heads,
            head_dim,
            NUM_SPLITS=num_splits,
            BLOCK_S=triton.next_power_of_2(num_splits),
            BLOCK_D=block_d,
            num_warps=4,
        )
    return out


def _default_num_splits(programs: int, max_tokens: int, device: torch.device) -> int:
    """Split long contexts only when (sequences x KV heads) would not fill the GPU twice over."""
    wanted = triton.cdiv(2 * _multiprocessor_count(device), programs)
    return max(1, min(MAX_SPLITS, wanted, max_tokens // MIN_TOKENS_PER_SPLIT))


@functools.cache
def _multiprocessor_count(device: torch.device) -> int:
    # Asked at the first launch, never at import: importing must work on a machine without a GPU.
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4
