"""Causal varlen prefill over the paged cache: reference against dense, kernel against reference."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.ops.prefill_attention import prefill_attention_ref, prefill_attention_triton
from tests.ops.compare import ATTENTION_TOLERANCES, assert_close
from tests.ops.conftest import DEVICE, DTYPES
from tests.ops.paged import dense_attention, make_paged_batch

BLOCK_SIZE = 16
HEAD_DIM = 8
GQA = [(4, 4), (8, 2), (8, 1)]
# (new tokens, tokens in the cache after the step): plain prefills of length 1, odd, exactly one
# block and just past it; chunked prefills continuing earlier context; one query longer than a
# 64-row tile; a single new token on a long context (decode-shaped).
SEQUENCES = [
    (1, 1),
    (7, 7),
    (BLOCK_SIZE, BLOCK_SIZE),
    (BLOCK_SIZE + 1, BLOCK_SIZE + 1),
    (5, 2 * BLOCK_SIZE + 3),
    (BLOCK_SIZE, 3 * BLOCK_SIZE),
    (70, 70),
    (1, 37),
]


def _run(sequences: list[tuple[int, int]], hq: int, hkv: int, head_dim: int, block_size: int, dtype):
    contexts = [c for _, c in sequences]
    batch = make_paged_batch(contexts, hkv, head_dim, block_size, dtype, DEVICE)
    q_lens = [n for n, _ in sequences]
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device=DEVICE)
    q = torch.randn(sum(q_lens), hq, head_dim, dtype=dtype, device=DEVICE)
    scale = head_dim**-0.5
    args = (q, batch.k_cache, batch.v_cache, batch.block_tables, cu, batch.context_lens, scale)
    return batch, q, cu, scale, prefill_attention_triton(*args), prefill_attention_ref(*args)


@pytest.mark.interpreter
@pytest.mark.parametrize(("hq", "hkv"), GQA, ids=lambda x: str(x))
def test_kernel_matches_reference(hq: int, hkv: int) -> None:
    *_, got, expected = _run(SEQUENCES, hq, hkv, HEAD_DIM, BLOCK_SIZE, torch.float32)
    assert_close(got, expected, ATTENTION_TOLERANCES[torch.float32], f"prefill hq={hq} hkv={hkv}")


@pytest.mark.interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("block_size", "head_dim"), [(5, 10), (32, 64)], ids=str)
def test_kernel_odd_blocks_and_dims(block_size: int, head_dim: int, dtype: torch.dtype) -> None:
    sequences = [(3, 3), (block_size + 1, block_size + 1), (2, 2 * block_size), (9, 4 * block_size + 1)]
    *_, got, expected = _run(sequences, 4, 2, head_dim, block_size, dtype)
    assert_close(got, expected, ATTENTION_TOLERANCES[dtype], f"prefill bs={block_size} d={head_dim}")


@pytest.mark.parametrize(("hq", "hkv"), GQA, ids=lambda x: str(x))
def test_reference_matches_dense_attention(hq: int, hkv: int) -> None:
    batch, q, cu, scale, _, expected = _run(SEQUENCES, hq, hkv, HEAD_DIM, BLOCK_SIZE, torch.float32)
    for b, (q_len, context) in enumerate(SEQUENCES):
        rows = slice(int(cu[b]), int(cu[b + 1]))
        truth = dense_attention(q[rows], batch.dense_k[b], batch.dense_v[b], scale)
        assert_close(expected[rows], truth, (1e-5, 1e-5), f"reference, sequence {b} ({q_len} of {context})")


def test_prefill_of_one_token_is_decode() -> None:
    from satscope.server_under_test.ops.decode_attention import paged_decode_attention_ref

    batch = make_paged_batch([1, 17, 40], 2, HEAD_DIM, BLOCK_SIZE, torch.float32, DEVICE)
    q = torch.randn(3, 8, HEAD_DIM, device=DEVICE)
    cu = torch.arange(4, dtype=torch.int32, device=DEVICE)
    prefill = prefill_attention_ref(q, batch.k_cache, batch.v_cache, batch.block_tables, cu, batch.context_lens, 0.4)
    decode = paged_decode_attention_ref(q, batch.k_cache, batch.v_cache, batch.block_tables, batch.context_lens, 0.4)
    assert_close(prefill, decode, (1e-6, 1e-6), "prefill of single tokens vs decode")


@pytest.mark.interpreter
def test_kernel_with_a_sequence_without_new_tokens() -> None:
    # A sequence that contributes no query rows this step must neither write nor shift the others.
    *_, got, expected = _run([(4, 4), (0, 21), (3, 19)], 4, 2, HEAD_DIM, BLOCK_SIZE, torch.float32)
    assert_close(got, expected, ATTENTION_TOLERANCES[torch.float32], "prefill with an empty sequence")


@pytest.mark.interpreter
def test_given_max_seqlen_matches_the_computed_one() -> None:
    batch, q, cu, scale, got, _ = _run([(3, 3), (9, 20)], 4, 2, HEAD_DIM, BLOCK_SIZE, torch.float32)
    args = (q, batch.k_cache, batch.v_cache, batch.block_tables, cu, batch.context_lens, scale)
    assert torch.equal(prefill_attention_triton(*args, max_seqlen_q=9), got)
