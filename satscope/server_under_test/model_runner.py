"""Turn a scheduled batch into tensors (token ids, positions, slot mapping, block tables, cu_seqlens),
run the model over the paged KV cache, and return the logits of the sequences that sample this step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from satscope.server_under_test.config import ModelConfig
from satscope.server_under_test.model import AttentionMetadata, LlamaModel
from satscope.server_under_test.scheduler import ScheduledBatch
from satscope.server_under_test.sequence import Sequence

__all__ = ["ModelRunner", "PreparedBatch", "RunnerTiming"]


@dataclass(slots=True)
class PreparedBatch:
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    sample_seqs: list[Sequence]  # sequences whose chunk reaches their last token: they sample
    sample_rows: torch.Tensor  # their last packed token's row, int64 [len(sample_seqs)]


@dataclass(slots=True)
class RunnerTiming:
    prepare_s: float = 0.0
    forward_s: float = 0.0


def _block_table_tensor(tables: list[list[int]], device: torch.device) -> torch.Tensor:
    width = max((len(t) for t in tables), default=0) or 1
    padded = [t + [0] * (width - len(t)) for t in tables]
    return torch.tensor(padded, dtype=torch.int32, device=device).reshape(len(tables), width)


class ModelRunner:
    def __init__(
        self,
        model: LlamaModel,
        cfg: ModelConfig,
        num_blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.model, self.cfg, self.block_size, self.device = model, cfg, block_size, device
        self.kv_cache = torch.zeros(
            cfg.num_layers, 2, num_blocks, block_size, cfg.num_kv_heads, cfg.head_dim, dtype=dtype, device=device
        )
        self.timing = RunnerTiming()

    def prepare(self, batch: ScheduledBatch) -> PreparedBatch:
        bs = self.block_size
        # Decode tokens (one new token per sequence) first, prefill chunks after: the model splits there.
        order = sorted(range(len(batch)), key=lambda i: batch.num_new_tokens[i] != 1)
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        decode_tables: list[list[int]] = []
        decode_lens: list[int] = []
        prefill_tables: list[list[int]] = []
        prefill_lens: list[int] = []
        cu = [0]
        prefill_chunks: list[int] = []
        sample_seqs: list[Sequence] = []
        sample_rows: list[int] = []
        for i in order:
            seq, n = batch.seqs[i], batch.num_new_tokens[i]
            start, end = seq.num_computed_tokens, seq.num_computed_tokens + n
            ids.extend(seq.token_ids(start, end))
            positions.extend(range(start, end))
            table = seq.block_table
            slots.extend(table[p // bs] * bs + p % bs for p in range(start, end))
            if n == 1:
                decode_tables.append(table)
                decode_lens.append(end)
            else:
                prefill_tables.append(table)
                prefill_lens.append(end)
                cu.append(cu[-1] + n)
                prefill_chunks.append(n)
            if end == seq.num_tokens:
                sample_seqs.append(seq)
                sample_rows.append(len(ids) - 1)
        dev = self.device
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.int64, device=dev),
            num_decode_tokens=len(decode_lens),
            decode_block_tables=_block_table_tensor(decode_tables, dev),
            decode_context_lens=torch.tensor(decode_lens, dtype=torch.int32, device=dev),
            prefill_block_tables=_block_table_tensor(prefill_tables, dev),
            prefill_cu_seqlens_q=torch.tensor(cu, dtype=torch.int32, device=dev),
            prefill_context_lens=torch.tensor(prefill_lens, dtype=torch.int32, device=dev),
            prefill_max_seqlen_q=max(prefill_chunks, default=None),
        )
        return PreparedBatch(
            input_ids=torch.tensor(ids, dtype=torch.int64, device=dev),
            positions=torch.tensor(positions, dtype=torch.int64, device=dev),
            meta=meta,
            sample_seqs=sample_seqs,
            sample_rows=torch.tensor(sample_rows, dtype=torch.int64, device=dev),
        )

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch) -> tuple[list[Sequence], torch.Tensor]:
        """Compute the batch's tokens into the cache; logits [S, V] for the S sequences that sample."""
        t0 = time.perf_counter()
        prepared = self.prepare(batch)
        t1 = time.perf_counter()
        hidden = self.model(prepared.input_ids, prepared.positions, prepared.meta, self.kv_cache)
        logits = self.model.compute_logits(hidden[prepared.sample_rows])
        if logits.is_cuda:
            torch.cuda.synchronize()
        self.timing = RunnerTiming(prepare_s=t1 - t0, forward_s=time.perf_counter() - t1)
        return prepared.sample_seqs, logits
