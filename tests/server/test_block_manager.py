"""BlockManager: allocation, reference counts, freeing, exhaustion, sequence growth."""

from __future__ import annotations

import pytest

from satscope.server_under_test.block_manager import BlockManager, OutOfBlocksError
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.sequence import Sequence


def test_allocate_and_free_track_usage_exactly() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a = bm.allocate(3)
    b = bm.allocate(5)
    assert len(set(a) | set(b)) == 8
    assert bm.num_used_blocks == 8 and bm.usage == 1.0 and bm.num_free_blocks == 0
    bm.free(a)
    assert bm.num_used_blocks == 5 and bm.usage == pytest.approx(5 / 8)
    bm.free(b)
    assert bm.num_used_blocks == 0


def test_exhaustion_raises_and_takes_nothing() -> None:
    bm = BlockManager(num_blocks=4, block_size=16)
    bm.allocate(3)
    assert not bm.can_allocate(2)
    with pytest.raises(OutOfBlocksError):
        bm.allocate(2)
    assert bm.num_free_blocks == 1


def test_shared_block_returns_to_pool_only_after_last_holder() -> None:
    bm = BlockManager(num_blocks=2, block_size=16)
    [block] = bm.allocate(1)
    bm.share([block])
    assert bm.ref_count(block) == 2
    bm.free([block])
    assert bm.num_used_blocks == 1
    bm.free([block])
    assert bm.num_used_blocks == 0
    with pytest.raises(ValueError, match="freed twice"):
        bm.free([block])
    with pytest.raises(ValueError, match="cannot be shared"):
        bm.share([block])


@pytest.mark.parametrize(
    ("computed", "new", "have", "needed"),
    [
        (0, 1, 0, 1),
        (0, 4, 0, 1),
        (0, 5, 0, 2),
        (4, 1, 1, 1),
        (3, 1, 1, 0),
        (0, 17, 0, 5),
        (8, 9, 2, 3),
    ],
)
def test_blocks_needed_counts_partial_blocks(computed: int, new: int, have: int, needed: int) -> None:
    bm = BlockManager(num_blocks=64, block_size=4)
    seq = Sequence("r", list(range(computed + new)), SamplingParams())
    seq.num_computed_tokens = computed
    seq.block_table = bm.allocate(have)
    assert bm.blocks_needed(seq, new) == needed


def test_grow_and_release_a_sequence() -> None:
    bm = BlockManager(num_blocks=3, block_size=4)
    seq = Sequence("r", list(range(10)), SamplingParams())
    assert bm.grow(seq, 10)
    assert len(seq.block_table) == 3 and bm.num_free_blocks == 0
    seq.num_computed_tokens = 10
    assert bm.grow(seq, 2)  # positions 10, 11 still fit in the third block
    seq.num_computed_tokens = 12
    assert not bm.grow(seq, 1)
    assert len(seq.block_table) == 3
    bm.release(seq)
    assert seq.block_table == [] and bm.num_used_blocks == 0
