"""The paged KV pool's bookkeeping: fixed-size blocks with reference counts and a free list.

Usage is exact: a block is used while its reference count is above zero. Reference counts let
several sequences share a block (a forked prefix); freeing only returns a block to the pool when
its last holder lets go.
"""

from __future__ import annotations

from collections import deque

from server_under_test.sequence import Sequence

__all__ = ["BlockManager", "OutOfBlocksError"]


class OutOfBlocksError(RuntimeError):
    """Raised when more blocks are requested than are free; callers check `can_allocate` first."""


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._ref_counts = [0] * num_blocks
        self._free: deque[int] = deque(range(num_blocks))

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        return self.num_used_blocks / self.num_blocks

    def ref_count(self, block_id: int) -> int:
        return self._ref_counts[block_id]

    def blocks_for_tokens(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= len(self._free)

    def allocate(self, num_blocks: int) -> list[int]:
        if num_blocks > len(self._free):
            raise OutOfBlocksError(f"asked for {num_blocks} blocks, {len(self._free)} free")
        blocks = [self._free.popleft() for _ in range(num_blocks)]
        for block in blocks:
            self._ref_counts[block] = 1
        return blocks

    def share(self, block_ids: list[int]) -> None:
        """Add a holder to blocks that are already in use."""
        for block in block_ids:
            if self._ref_counts[block] < 1:
                raise ValueError(f"block {block} is free and cannot be shared")
            self._ref_counts[block] += 1

    def free(self, block_ids: list[int]) -> None:
        for block in block_ids:
            if self._ref_counts[block] < 1:
                raise ValueError(f"block {block} freed twice")
            self._ref_counts[block] -= 1
            if self._ref_counts[block] == 0:
                self._free.append(block)

    # Sequence-level helpers used by the scheduler.

    def blocks_needed(self, seq: Sequence, num_new_tokens: int) -> int:
        """Extra blocks `seq` needs to hold its computed tokens plus `num_new_tokens`."""
        total = self.blocks_for_tokens(seq.num_computed_tokens + num_new_tokens)
        return max(0, total - len(seq.block_table))

    def grow(self, seq: Sequence, num_new_tokens: int) -> bool:
        """Give `seq` room for `num_new_tokens` more tokens; False (and nothing taken) if the pool is short."""
        needed = self.blocks_needed(seq, num_new_tokens)
        if not self.can_allocate(needed):
            return False
        seq.block_table.extend(self.allocate(needed))
        return True

    def release(self, seq: Sequence) -> None:
        self.free(seq.block_table)
        seq.block_table = []
