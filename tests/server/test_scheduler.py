"""Scheduler: FIFO admission, max_num_seqs, token budget, chunked prefill, preemption order."""

from __future__ import annotations

from satscope.server_under_test.block_manager import BlockManager
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.scheduler import Scheduler
from satscope.server_under_test.sequence import FinishReason, Sequence, SequenceStatus


def _seq(rid: str, prompt_len: int) -> Sequence:
    return Sequence(rid, [1] * prompt_len, SamplingParams(max_tokens=100))


def _complete_step(sched: Scheduler, token: int = 7) -> None:
    """What the engine does after the model ran: mark tokens computed, append a sampled token."""
    batch = sched.schedule()
    for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
        seq.num_computed_tokens += n
        if seq.num_computed_tokens == seq.num_tokens:
            seq.output_token_ids.append(token)


def test_fifo_admission_up_to_max_num_seqs() -> None:
    sched = Scheduler(BlockManager(64, 4), max_num_seqs=2, max_batched_tokens=100)
    seqs = [_seq(f"r{i}", 3) for i in range(3)]
    for s in seqs:
        sched.add(s)
    batch = sched.schedule()
    assert [s.request_id for s in batch.seqs] == ["r0", "r1"]
    assert batch.num_new_tokens == [3, 3]
    assert [s.request_id for s in sched.waiting] == ["r2"]
    assert seqs[0].status is SequenceStatus.RUNNING and seqs[0].first_scheduled_time is not None


def test_token_budget_chunks_prefill_and_decodes_go_first() -> None:
    sched = Scheduler(BlockManager(64, 4), max_num_seqs=8, max_batched_tokens=10)
    a, b = _seq("a", 4), _seq("b", 25)
    sched.add(a)
    sched.add(b)
    batch = sched.schedule()
    assert batch.num_new_tokens == [4, 6]  # a whole, b's first chunk fills the budget
    for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
        seq.num_computed_tokens += n
    a.output_token_ids.append(5)
    batch = sched.schedule()
    # a decodes one token, b continues its prefill with the rest of the budget.
    assert [s.request_id for s in batch.seqs] == ["a", "b"]
    assert batch.num_new_tokens == [1, 9]
    assert batch.num_tokens <= 10


def test_no_admission_without_blocks() -> None:
    bm = BlockManager(4, 4)
    sched = Scheduler(bm, max_num_seqs=8, max_batched_tokens=100)
    sched.add(_seq("big", 12))
    sched.add(_seq("next", 8))
    batch = sched.schedule()
    assert [s.request_id for s in batch.seqs] == ["big"]
    assert [s.request_id for s in sched.waiting] == ["next"]  # FIFO: it waits, nothing skips ahead
    assert bm.num_used_blocks == 3


def test_preempts_newest_first_and_requeues_at_front() -> None:
    bm = BlockManager(6, 4)
    sched = Scheduler(bm, max_num_seqs=8, max_batched_tokens=100)
    old, mid, new = _seq("old", 8), _seq("mid", 8), _seq("new", 7)
    for s in (old, mid, new):
        sched.add(s)
    _complete_step(sched)  # 2 + 2 + 2 blocks: the pool is full
    assert bm.num_free_blocks == 0
    late = _seq("late", 3)
    sched.add(late)
    batch = sched.schedule()
    # old and mid each need a third block for their 9th token; "new" (newest) gives its blocks up.
    assert [s.request_id for s in batch.preempted] == ["new"]
    assert [s.request_id for s in batch.seqs] == ["old", "mid"]
    assert new.status is SequenceStatus.WAITING and new.num_computed_tokens == 0 and new.block_table == []
    assert [s.request_id for s in sched.waiting] == ["new", "late"]
    assert sched.num_preemptions == 1 and new.num_preemptions == 1
    # When preemption happened, nothing new is admitted in the same step.
    assert late.status is SequenceStatus.WAITING


def test_sequence_preempts_itself_when_it_is_the_newest() -> None:
    bm = BlockManager(5, 4)
    sched = Scheduler(bm, max_num_seqs=8, max_batched_tokens=100)
    a, b = _seq("a", 8), _seq("b", 8)
    sched.add(a)
    sched.add(b)
    _complete_step(sched)  # 2 + 2 blocks used, 1 free; each has sampled one token (9th)
    batch = sched.schedule()
    # a takes the last free block for its 9th token; b, the newest, needs one too and preempts itself.
    assert [s.request_id for s in batch.preempted] == ["b"]
    assert [s.request_id for s in batch.seqs] == ["a"]
    assert bm.num_used_blocks == 3
    # b's recompute covers its prompt and its generated token alike.
    assert b.num_uncomputed_tokens == 9 and b.output_token_ids == [7]


def test_finish_frees_blocks_from_running_and_waiting() -> None:
    bm = BlockManager(16, 4)
    sched = Scheduler(bm, max_num_seqs=1, max_batched_tokens=100)
    a, b = _seq("a", 5), _seq("b", 5)
    sched.add(a)
    sched.add(b)
    sched.schedule()
    assert bm.num_used_blocks == 2
    sched.finish(a, FinishReason.ABORT)
    sched.finish(b, FinishReason.ABORT)
    assert bm.num_used_blocks == 0 and not sched.has_work
    assert a.finish_reason is FinishReason.ABORT and a.is_finished
