"""Paged decode attention: the reference against dense attention, the kernel against the reference."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.ops.decode_attention import paged_decode_attention_ref, paged_decode_attention_triton
from tests.ops.compare import ATTENTION_TOLERANCES, assert_close
from tests.ops.conftest import DEVICE, DTYPES
from tests.ops.paged import dense_attention, make_paged_batch

BLOCK_SIZE = 16
# Context lengths: 1, odd, exactly one and two blocks, just past them, and a multi-tile one.
CONTEXTS = [1, 7, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 1, 150]
GQA = [(4, 4), (8, 2), (8, 1)]  # (q heads, kv heads): ratios 1, 4, 8
HEAD_DIM = 8


def _run(contexts: list[int], hq: int, hkv: int, head_dim: int, block_size: int, dtype: torch.dtype, splits: int):
    batch = make_paged_batch(contexts, hkv, head_dim, block_size, dtype, DEVICE)
    q = torch.randn(len(contexts), hq, head_dim, dtype=dtype, device=DEVICE)
    scale = head_dim**-0.5
    args = (q, batch.k_cache, batch.v_cache, batch.block_tables, batch.context_lens, scale)
    return (
        batch,
        q,
        scale,
        paged_decode_attention_triton(*args, num_splits=splits),
        paged_decode_attention_ref(*args),
    )


@pytest.mark.interpreter
@pytest.mark.parametrize("splits", [1, 3], ids=lambda s: f"splits{s}")
@pytest.mark.parametrize(("hq", "hkv"), GQA, ids=lambda x: str(x))
def test_kernel_matches_reference(hq: int, hkv: int, splits: int) -> None:
    # The whole batch at once: every context length meets every GQA ratio and split count.
    _, _, _, got, expected = _run(CONTEXTS, hq, hkv, HEAD_DIM, BLOCK_SIZE, torch.float32, splits)
    assert_close(got, expected, ATTENTION_TOLERANCES[torch.float32], f"decode hq={hq} hkv={hkv}")


@pytest.mark.interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("block_size", "head_dim"), [(5, 10), (1, 16), (32, 64)], ids=str)
def test_kernel_odd_blocks_and_dims(block_size: int, head_dim: int, dtype: torch.dtype) -> None:
    contexts = [1, block_size, block_size + 1, 3 * block_size + 2, 67]
    _, _, _, got, expected = _run(contexts, 8, 2, head_dim, block_size, dtype, 1)
    assert_close(got, expected, ATTENTION_TOLERANCES[dtype], f"decode bs={block_size} d={head_dim}")


@pytest.mark.interpreter
def test_split_count_does_not_change_the_result() -> None:
    # More splits than a short sequence has tiles leaves some splits empty; they must weigh nothing.
    contexts = [3, 64, 65, 300]
    batch = make_paged_batch(contexts, 2, HEAD_DIM, BLOCK_SIZE, torch.float32, DEVICE)
    q = torch.randn(len(contexts), 4, HEAD_DIM, device=DEVICE)
    args = (q, batch.k_cache, batch.v_cache, batch.block_tables, batch.context_lens, 0.3)
    one = paged_decode_attention_triton(*args, num_splits=1)
    for splits in (2, 5, 8):
        assert_close(paged_decode_attention_triton(*args, num_splits=splits), one, (2e-6, 2e-6), f"{splits=}")


@pytest.mark.parametrize(("hq", "hkv"), GQA, ids=lambda x: str(x))
def test_reference_matches_dense_attention(hq: int, hkv: int) -> None:
    batch, q, scale, _, expected = _run(CONTEXTS, hq, hkv, HEAD_DIM, BLOCK_SIZE, torch.float32, 1)
    for b in range(len(CONTEXTS)):
        truth = dense_attention(q[b : b + 1], batch.dense_k[b], batch.dense_v[b], scale)[0]
        assert_close(expected[b], truth, (1e-5, 1e-5), f"reference, sequence {b} (context {CONTEXTS[b]})")


def test_rejects_int64_block_tables() -> None:
    batch = make_paged_batch([3], 1, HEAD_DIM, BLOCK_SIZE, torch.float32, DEVICE)
    q = torch.randn(1, 1, HEAD_DIM, device=DEVICE)
    with pytest.raises(AssertionError, match="int32"):
        paged_decode_attention_triton(
            q, batch.k_cache, batch.v_cache, batch.block_tables.long(), batch.context_lens, 1.0
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: the cache must exceed 2**31 elements")
def test_block_offsets_past_int32() -> None:
    # 2**31 / (16 * 8 * 128) = 131072 blocks: blocks beyond that start past a 32-bit element offset.
    hkv, dim, block_size, num_blocks = 8, 128, 16, 131072 + 64
    k_cache = torch.randn(num_blocks, block_size, hkv, dim, dtype=torch.bfloat16, device=DEVICE)
    v_cache = torch.randn_like(k_cache)
    tables = torch.tensor([[num_blocks - 1, 5, num_blocks - 40], [num_blocks - 2, 0, 0]], dtype=torch.int32)
    tables = tables.to(DEVICE)
    lens = torch.tensor([40, 9], dtype=torch.int32, device=DEVICE)
    q = torch.randn(2, 32, dim, dtype=torch.bfloat16, device=DEVICE)
    args = (q, k_cache, v_cache, tables, lens, dim**-0.5)
    got = paged_decode_attention_triton(*args)
    assert_close(got, paged_decode_attention_ref(*args), ATTENTION_TOLERANCES[torch.bfloat16], "decode, int64 offsets")
