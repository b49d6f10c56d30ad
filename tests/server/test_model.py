"""The paged-KV model forward equals a dense, contiguous-cache reference forward (same weights).

Covers one-shot prefill, chunked prefill, decode, and a mixed batch of all three, with block tables
scattered over the pool so that paging mistakes cannot hide behind contiguous blocks.
"""

from __future__ import annotations

import random

import pytest
import torch

from satscope.server_under_test.block_manager import BlockManager
from satscope.server_under_test.config import ModelConfig
from satscope.server_under_test.model_runner import ModelRunner
from satscope.server_under_test.reference import dense_forward
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.scheduler import ScheduledBatch
from satscope.server_under_test.sequence import Sequence
from satscope.server_under_test.weights import build_model

CFG = ModelConfig(
    name="test",
    vocab_size=258,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=96,
    max_position=256,
)
BLOCK_SIZE = 4
NUM_BLOCKS = 96


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    torch.manual_seed(0)
    model = build_model(CFG, torch.float32, torch.device("cpu"), seed=1, path=None)
    return ModelRunner(model, CFG, NUM_BLOCKS, BLOCK_SIZE, torch.float32, torch.device("cpu"))


class _Pool:
    """Hands out blocks in a shuffled order, so a sequence's blocks are never contiguous."""

    def __init__(self, seed: int) -> None:
        self.bm = BlockManager(NUM_BLOCKS, BLOCK_SIZE)
        self.bm._free = type(self.bm._free)(random.Random(seed).sample(range(NUM_BLOCKS), NUM_BLOCKS))


def _step(runner: ModelRunner, pool: _Pool, work: list[tuple[Sequence, int]]) -> dict[str, torch.Tensor]:
    """Run one packed batch; return, per sequence, the logits of every token it computed."""
    batch = ScheduledBatch()
    for seq, n in work:
        assert pool.bm.grow(seq, n)
        batch.seqs.append(seq)
        batch.num_new_tokens.append(n)
    prepared = runner.prepare(batch)
    with torch.inference_mode():
        hidden = runner.model(prepared.input_ids, prepared.positions, prepared.meta, runner.kv_cache)
        logits = runner.model.compute_logits(hidden)
    # The runner packs decode tokens (n == 1) first, then prefill chunks, each in batch order.
    order = sorted(range(len(work)), key=lambda i: work[i][1] != 1)
    out, row = {}, 0
    for i in order:
        seq, n = work[i]
        out[seq.request_id] = logits[row : row + n]
        row += n
        seq.num_computed_tokens += n
    return out


def _prompt(seed: int, n: int) -> list[int]:
    return random.Random(seed).choices(range(256), k=n)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("prompt_len", [1, 3, 4, 5, 17, 61])
def test_prefill_matches_dense(runner: ModelRunner, prompt_len: int) -> None:
    seq = Sequence("a", _prompt(prompt_len, prompt_len), SamplingParams())
    got = _step(runner, _Pool(prompt_len), [(seq, prompt_len)])["a"]
    _assert_close(got, dense_forward(runner.model, seq.prompt_token_ids))


@pytest.mark.parametrize("chunks", [[5, 5, 5], [1, 7, 2, 9], [4, 4, 4, 4, 3]])
def test_chunked_prefill_matches_dense(runner: ModelRunner, chunks: list[int]) -> None:
    seq = Sequence("a", _prompt(sum(chunks), sum(chunks)), SamplingParams())
    pool = _Pool(7)
    got = torch.cat([_step(runner, pool, [(seq, n)])["a"] for n in chunks])
    _assert_close(got, dense_forward(runner.model, seq.prompt_token_ids))


def test_mixed_batch_of_decode_chunk_and_prefill_matches_dense(runner: ModelRunner) -> None:
    pool = _Pool(3)
    dec = Sequence("dec", _prompt(1, 13), SamplingParams())
    chunked = Sequence("chunked", _prompt(2, 22), SamplingParams())
    _step(runner, pool, [(dec, 13), (chunked, 10)])
    for step in range(6):
        dec.output_token_ids.append(40 + step)
        work = [(chunked, 12)] if step == 0 else []
        fresh = Sequence(f"fresh{step}", _prompt(10 + step, 3 + 5 * step), SamplingParams())
        got = _step(runner, pool, [*work, (dec, 1), (fresh, fresh.num_tokens)])
        dec_ids = dec.prompt_token_ids + dec.output_token_ids
        _assert_close(got["dec"], dense_forward(runner.model, dec_ids)[-1:])
        _assert_close(got[fresh.request_id], dense_forward(runner.model, fresh.prompt_token_ids))
        if step == 0:
            _assert_close(got["chunked"], dense_forward(runner.model, chunked.prompt_token_ids)[10:])
        pool.bm.release(fresh)


def test_rope_tables_match_hf_convention() -> None:
    from satscope.server_under_test.model import rope_tables

    cos, sin = rope_tables(CFG, torch.device("cpu"))
    d = CFG.head_dim
    inv = 1.0 / (CFG.rope_theta ** (torch.arange(0, d, 2).double() / d))
    assert cos.shape == (CFG.max_position, d // 2)
    torch.testing.assert_close(cos[5], (5 * inv).cos().float())
    torch.testing.assert_close(sin[200], (200 * inv).sin().float())


def test_llama3_rope_scaling_matches_the_published_rule() -> None:
    import math
    from dataclasses import replace

    from satscope.server_under_test.model import rope_tables

    cfg = replace(CFG, rope_theta=500000.0, rope_scaling=(8.0, 1.0, 4.0, 64))
    plain, _ = rope_tables(replace(cfg, rope_scaling=None), torch.device("cpu"))
    scaled, scaled_sin = rope_tables(cfg, torch.device("cpu"))
    d = CFG.head_dim
    inv = [1.0 / 500000.0 ** (i / d) for i in range(0, d, 2)]
    for j, f in enumerate(inv):
        wavelen = 2 * math.pi / f
        if wavelen < 64 / 4:  # short wavelengths: unchanged
            expected = f
        elif wavelen > 64 / 1:  # long ones: divided by the factor
            expected = f / 8.0
        else:
            smooth = (64 / wavelen - 1.0) / (4.0 - 1.0)
            expected = (1 - smooth) * f / 8.0 + smooth * f
        angle = math.atan2(float(scaled_sin[1, j]), float(scaled[1, j]))  # the frequency, at position 1
        assert math.isclose(angle, expected, rel_tol=1e-5)
    assert torch.equal(scaled[:, 0], plain[:, 0])  # the fastest frequency is never rescaled
