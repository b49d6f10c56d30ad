"""The paged KV pool's bookkeeping: reference-counted blocks, a free list and a prefix cache.

Usage is exact: a block is used while its reference count is above zero. Reference counts let
several sequences share a block; freeing returns a block to the pool when its last holder lets go.

Automatic prefix caching (vLLM's design): once a block is full and its K/V computed, it is named by
a hash chained over every token before it and the model (`cache_full_blocks`), so equal prefixes
get equal names. A new sequence looks its full prompt blocks up at admission (`allocate_prefix`) and
shares the hits instead of recomputing them. A freed block that holds a cached prefix keeps its K/V
on an LRU of free cached blocks; it is evicted (its hash forgotten) only when a new block is needed
and no never-cached free block is left. Free cached blocks count as free in `usage`, as in vLLM.
Partial blocks are never shared, and hits stop one token short of the sequence, so every step
computes at least one token and no shared block is ever written.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict, deque

from satscope.server_under_test.sequence import Sequence

__all__ = ["BlockManager", "OutOfBlocksError", "block_hash"]


class OutOfBlocksError(RuntimeError):
    """Raised when more blocks are requested than are free; callers check `can_allocate` first."""


def block_hash(parent: bytes, token_ids: list[int]) -> bytes:
    """The name of a full block: a digest of the previous block's name and this block's tokens."""
    return hashlib.blake2b(parent + array("q", token_ids).tobytes(), digest_size=16).digest()


class BlockManager:
    def __init__(
        self, num_blocks: int, block_size: int, enable_prefix_caching: bool = False, cache_salt: str = ""
    ) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._root = hashlib.blake2b(cache_salt.encode(), digest_size=16).digest()
        self._ref_counts = [0] * num_blocks
        self._free: deque[int] = deque(range(num_blocks))  # free and holding no cached prefix
        self._cached_free: OrderedDict[int, None] = OrderedDict()  # free cached blocks, oldest first
        self._block_of: dict[bytes, int] = {}
        self._hash_of: dict[int, bytes] = {}
        self.num_evictions = 0

    @property
    def num_free_blocks(self) -> int:
        return len(self._free) + len(self._cached_free)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    @property
    def usage(self) -> float:
        return self.num_used_blocks / self.num_blocks

    @property
    def num_cached_blocks(self) -> int:
        """Blocks holding a cached prefix, in use or free."""
        return len(self._hash_of)

    @property
    def num_cached_free_blocks(self) -> int:
        """Free blocks that still hold a cached prefix (evicted first-in, first-out by last use)."""
        return len(self._cached_free)

    def ref_count(self, block_id: int) -> int:
        return self._ref_counts[block_id]

    def blocks_for_tokens(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= self.num_free_blocks

    def allocate(self, num_blocks: int) -> list[int]:
        if num_blocks > self.num_free_blocks:
            raise OutOfBlocksError(f"asked for {num_blocks} blocks, {self.num_free_blocks} free")
        blocks = [self._take_free() for _ in range(num_blocks)]
        for block in blocks:
            self._ref_counts[block] = 1
        return blocks

    def _take_free(self) -> int:
        if self._free:
            return self._free.popleft()
        block, _ = self._cached_free.popitem(last=False)
        del self._block_of[self._hash_of.pop(block)]
        self.num_evictions += 1
        return block

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
                if block in self._hash_of:
                    self._cached_free[block] = None
                else:
                    self._free.append(block)

    # Sequence-level helpers used by the scheduler and the engine.

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
        # Tail blocks first onto the LRU: a prefix's deepest blocks are the first to go.
        self.free(seq.block_table[::-1])
        seq.block_table = []

    def _hashes(self, seq: Sequence, num_blocks: int) -> list[bytes]:
        """The names of `seq`'s first `num_blocks` full blocks, extending the ones kept on the sequence."""
        bs = self.block_size
        while len(seq.block_hashes) < num_blocks:
            i = len(seq.block_hashes)
            parent = seq.block_hashes[-1] if seq.block_hashes else self._root
            seq.block_hashes.append(block_hash(parent, seq.token_ids(i * bs, (i + 1) * bs)))
        return seq.block_hashes[:num_blocks]

    def cached_prefix(self, seq: Sequence) -> list[int]:
        """The cached blocks that match `seq`'s leading full blocks, stopping one token short of its end."""
        if not self.enable_prefix_caching:
            return []
        hits = []
        for h in self._hashes(seq, (seq.num_tokens - 1) // self.block_size):
            block = self._block_of.get(h)
            if block is None:
                break
            hits.append(block)
        return hits

    def allocate_prefix(self, seq: Sequence, num_new_tokens: int) -> int:
        """Admit a sequence that holds no blocks: share its cached prefix, then make room for
        `num_new_tokens` uncached tokens (fewer if the prefix covers them). Returns the cached tokens,
        or -1 (and nothing taken) if the pool is short."""
        hits = self.cached_prefix(seq)
        cached = len(hits) * self.block_size
        n = min(num_new_tokens, seq.num_tokens - cached)
        needed = self.blocks_for_tokens(cached + n) - len(hits)
        reclaimed = sum(1 for b in hits if self._ref_counts[b] == 0)
        if needed > self.num_free_blocks - reclaimed:
            return -1
        for block in hits:
            if self._ref_counts[block] == 0:
                del self._cached_free[block]
            self._ref_counts[block] += 1
        seq.block_table = hits + self.allocate(needed)
        seq.num_computed_tokens = cached
        return cached

    def cache_full_blocks(self, seq: Sequence) -> None:
        """Name the blocks of `seq` that are full and computed, so later sequences can share them."""
        if not self.enable_prefix_caching:
            return
        full = seq.num_computed_tokens // self.block_size
        for i, h in enumerate(self._hashes(seq, full)):
            block = seq.block_table[i]
            if block in self._hash_of or h in self._block_of:
                continue  # already named, or the same prefix computed twice at once: keep one copy
            self._block_of[h] = block
            self._hash_of[block] = h
