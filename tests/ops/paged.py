"""Build a paged KV cache from dense per-sequence K/V, and the dense attention that is the truth.

Blocks are drawn at random from a pool much larger than the batch needs (so a kernel that indexes
the wrong block, or overflows an index, reads someone else's data), and the block-table entries past
each sequence's last block hold garbage, as the API allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(slots=True)
class PagedBatch:
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    block_tables: torch.Tensor
    context_lens: torch.Tensor
    dense_k: list[torch.Tensor]
    dense_v: list[torch.Tensor]

    def __post_init__(self) -> None:
        assert len(self.dense_k) == len(self.dense_v) == self.block_tables.shape[0]


def make_paged_batch(
    context_lens: list[int],
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    dtype: torch.dtype,
    device: str,
    spare_blocks: int = 512,
) -> PagedBatch:
    blocks_per_seq = [-(-n // block_size) for n in context_lens]
    max_blocks = max(blocks_per_seq) + 2
    num_blocks = sum(blocks_per_seq) + spare_blocks
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    # Noise everywhere, so reading an unassigned block gives a wrong answer rather than zeros.
    k_cache = torch.randn(shape, dtype=dtype, device=device)
    v_cache = torch.randn(shape, dtype=dtype, device=device)
    pool = torch.randperm(num_blocks, device=device)
    block_tables = torch.randint(-(2**30), 2**30, (len(context_lens), max_blocks), dtype=torch.int32, device=device)
    dense_k, dense_v = [], []
    used = 0
    for b, (n, nb) in enumerate(zip(context_lens, blocks_per_seq, strict=True)):
        blocks = pool[used : used + nb]
        used += nb
        block_tables[b, :nb] = blocks.to(torch.int32)
        dense_k.append(k_cache[blocks].flatten(0, 1)[:n].clone())
        dense_v.append(v_cache[blocks].flatten(0, 1)[:n].clone())
    context = torch.tensor(context_lens, dtype=torch.int32, device=device)
    return PagedBatch(k_cache, v_cache, block_tables, context, dense_k, dense_v)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of the last q.shape[0] positions of one sequence, head by head, in float64.

    q [Lq, Hq, D], k/v [L, Hkv, D] → [Lq, Hq, D]; query i sits at position L - Lq + i.
    """
    q_len, num_q_heads, _ = q.shape
    context, num_kv_heads, _ = k.shape
    group = num_q_heads // num_kv_heads
    out = torch.empty(q.shape, dtype=torch.float64)
    for h in range(num_q_heads):
        qh = q[:, h].double().cpu()
        kh = k[:, h // group].double().cpu()
        vh = v[:, h // group].double().cpu()
        for i in range(q_len):
            visible = context - q_len + i + 1
            weights = torch.softmax(kh[:visible] @ qh[i] * scale, dim=0)
            out[i, h] = weights @ vh[:visible]
    return out
