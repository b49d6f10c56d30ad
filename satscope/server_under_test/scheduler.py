"""Iteration-level continuous batching over the paged KV pool.

Every step: running sequences first, oldest first, each gets the tokens it has not computed yet
(one token when decoding, a chunk when prefilling) within the step's token budget. When the pool
runs out, the newest running sequence is preempted by recompute: its blocks are freed and it goes
back to the front of the waiting queue. Then, if nothing was preempted, waiting sequences are
admitted FIFO while there are seats (`max_num_seqs`), budget and blocks; an admitted sequence
first shares the cached KV blocks of its prefix (`BlockManager.allocate_prefix`) and computes only
the rest. The waiting queue's
bound is enforced where requests arrive (`LLMEngine.add_request`), so a refusal happens before
anything is queued; preempted sequences always go back in.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from satscope.server_under_test.block_manager import BlockManager
from satscope.server_under_test.sequence import FinishReason, Sequence, SequenceStatus

__all__ = ["ScheduledBatch", "Scheduler"]


@dataclass(slots=True)
class ScheduledBatch:
    """What one engine step computes: `num_new_tokens[i]` tokens of `seqs[i]`."""

    seqs: list[Sequence] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    def __len__(self) -> int:
        return len(self.seqs)


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_batched_tokens: int) -> None:
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_batched_tokens = max_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self.prefix_queries = 0  # tokens looked up in the prefix cache at first admission
        self.prefix_hits = 0  # of those, tokens found (readmissions after preemption are not counted)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def schedule(self) -> ScheduledBatch:
        batch = ScheduledBatch()
        budget = self.max_batched_tokens
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.num_uncomputed_tokens, budget)
            while not self.block_manager.grow(seq, n):
                victim = self.running[-1]
                self._preempt(victim)
                batch.preempted.append(victim)
                if victim is seq:
                    break
            if seq.status is not SequenceStatus.RUNNING:
                break
            batch.seqs.append(seq)
            batch.num_new_tokens.append(n)
            budget -= n
            i += 1
        if batch.preempted:
            return batch
        now = time.monotonic()
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            cached = self.block_manager.allocate_prefix(seq, budget)
            if cached < 0:
                break
            if seq.num_cached_tokens is None:
                seq.num_cached_tokens = cached
            if not seq.num_preemptions:  # as vLLM: a readmission finds its own blocks; that is no reuse
                self.prefix_queries += seq.num_tokens
                self.prefix_hits += cached
            n = min(seq.num_uncomputed_tokens, budget)
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            if seq.first_scheduled_time is None:
                seq.first_scheduled_time = now
            self.running.append(seq)
            batch.seqs.append(seq)
            batch.num_new_tokens.append(n)
            budget -= n
        return batch

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.block_manager.release(seq)
        seq.num_computed_tokens = 0
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    def finish(self, seq: Sequence, reason: FinishReason) -> None:
        """Take `seq` out of whichever queue holds it and return its blocks."""
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        elif seq.status is SequenceStatus.WAITING:
            self.waiting.remove(seq)
        self.block_manager.release(seq)
        seq.status = SequenceStatus.FINISHED
        seq.finish_reason = reason
