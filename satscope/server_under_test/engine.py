"""The engine: scheduler + model runner + sampler, stepped on its own thread.

The asyncio side calls `add_request` / `abort` (thread-safe; they only queue a command) and gets a
`RequestOutput` per step per request through the callback it passed. `step()` is also usable
directly, without the thread, for offline generation and benchmarks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from satscope.server_under_test.block_manager import BlockManager
from satscope.server_under_test.config import ModelConfig, ServerConfig
from satscope.server_under_test.detokenizer import StreamingText
from satscope.server_under_test.metrics import EngineMetrics
from satscope.server_under_test.outputs import RequestOutput, StepTiming
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.scheduler import ScheduledBatch, Scheduler
from satscope.server_under_test.sequence import FinishReason, Sequence
from satscope.server_under_test.setup import EngineParts, build_engine_parts
from satscope.server_under_test.tokenizer import Tokenizer

__all__ = ["LLMEngine", "PromptTooLongError", "QueueFullError", "RequestOutput", "StepTiming"]

log = logging.getLogger("satscope.server")


class PromptTooLongError(ValueError):
    """Prompt plus max_tokens does not fit the context or the KV pool."""


class QueueFullError(RuntimeError):
    """`max_waiting` requests are waiting already; the caller should retry later."""


Sink = Callable[[RequestOutput], None]


@dataclass(slots=True, eq=False)
class _Request:
    seq: Sequence
    text: StreamingText
    sink: Sink | None


class LLMEngine:
    def __init__(self, config: ServerConfig, parts: EngineParts | None = None) -> None:
        self.config = config
        p = parts or build_engine_parts(config)
        self.model_config: ModelConfig = p.model_config
        self.tokenizer: Tokenizer = p.tokenizer
        self.runner, self.sampler, self.facts = p.runner, p.sampler, p.facts
        self.block_manager = BlockManager(
            p.facts.kv_capacity_blocks,
            config.block_size,
            config.enable_prefix_caching,
            cache_salt=f"{config.model_path or config.preset}|{config.seed}|{config.dtype}",
        )
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_batched_tokens)
        self.metrics = EngineMetrics(p.facts)
        self.max_model_len = self.model_config.max_position
        self._stop_ids = self.model_config.stop_token_ids
        self.last_timing = StepTiming()
        self._requests: dict[str, _Request] = {}
        self._inbox: deque[_Request | str] = deque()  # a request to add, or the id of one to abort
        self._num_pending = 0
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._preemptions_seen = 0

    # ---- called from any thread -------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        return self._num_pending + len(self.scheduler.waiting)

    def check_fits(self, num_prompt_tokens: int, max_tokens: int) -> None:
        total = num_prompt_tokens + max_tokens
        if total > self.max_model_len:
            raise PromptTooLongError(
                f"prompt ({num_prompt_tokens} tokens) plus max_tokens ({max_tokens}) is {total} tokens, "
                f"more than the context of {self.max_model_len}"
            )
        blocks = self.block_manager.blocks_for_tokens(total)
        if blocks > self.block_manager.num_blocks:
            raise PromptTooLongError(
                f"prompt plus max_tokens needs {blocks} KV blocks, the pool has {self.block_manager.num_blocks}"
            )

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams,
        sink: Sink | None = None,
        arrival_time: float | None = None,
    ) -> None:
        """Queue a request; raises PromptTooLongError or QueueFullError before queueing anything."""
        if not prompt_token_ids:
            raise PromptTooLongError("the prompt is empty")
        self.check_fits(len(prompt_token_ids), params.max_tokens)
        seq = Sequence(request_id, list(prompt_token_ids), params)
        if arrival_time is not None:
            seq.arrival_time = arrival_time
        req = _Request(seq, StreamingText(self.tokenizer.incremental_decoder(), params.stop), sink)
        with self._wakeup:
            if self.num_waiting >= self.config.max_waiting:
                raise QueueFullError(f"waiting queue is full ({self.config.max_waiting} requests)")
            self._num_pending += 1
            self._inbox.append(req)
            self._wakeup.notify()

    def abort(self, request_id: str) -> None:
        with self._wakeup:
            self._inbox.append(request_id)
            self._wakeup.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="satscope-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued and running (up to `timeout_s`), then stop the thread."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- engine thread ----------------------------------------------------------------------

    @property
    def has_unfinished(self) -> bool:
        return bool(self._inbox) or self.scheduler.has_work

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._inbox and not self.scheduler.has_work and not self._stopping:
                    self._wakeup.wait()
                if self._stopping and not self._inbox and not self.scheduler.has_work:
                    return
            try:
                self.step()
            except Exception:
                log.exception("engine step failed; failing every request in flight")
                self._fail_all()

    def _drain_inbox(self) -> None:
        while self._inbox:
            item = self._inbox.popleft()
            if isinstance(item, _Request):
                with self._wakeup:
                    self._num_pending -= 1
                self._requests[item.seq.request_id] = item
                self.scheduler.add(item.seq)
            elif (req := self._requests.get(item)) is not None:
                self._finish(req, FinishReason.ABORT, "")

    def step(self) -> list[RequestOutput]:
        """One iteration: schedule, run the model, sample, hand each request its new text."""
        self._drain_inbox()
        t0 = time.perf_counter()
        batch = self.scheduler.schedule()
        # the gauges show the step as scheduled: its running batch and the KV blocks it holds while it
        # computes (read after the step, the blocks of sequences that just finished would be gone)
        scheduled = (len(self.scheduler.running), self.num_waiting, self.block_manager.num_used_blocks)
        t1 = time.perf_counter()
        outputs: list[RequestOutput] = []
        timing = StepTiming(schedule_s=t1 - t0, batch_size=len(batch), num_tokens=batch.num_tokens)
        if batch.seqs:
            seqs, logits = self.runner.run(batch)
            t2 = time.perf_counter()
            tokens = self.sampler.sample(logits, [s.request_id for s in seqs], [s.params for s in seqs])
            t3 = time.perf_counter()
            outputs = self._postprocess(batch, seqs, tokens)
            timing.prepare_s, timing.forward_s = self.runner.timing.prepare_s, self.runner.timing.forward_s
            timing.sample_s, timing.postprocess_s = t3 - t2, time.perf_counter() - t3
        if self.config.step_delay_ms:
            time.sleep(self.config.step_delay_ms / 1000.0)
        self.last_timing = timing
        self._record_step(batch, time.perf_counter() - t0, scheduled)
        return outputs

    def _postprocess(self, batch: ScheduledBatch, seqs: list[Sequence], tokens: list[int]) -> list[RequestOutput]:
        prompt_tokens = 0
        for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
            is_decode = n == 1 and seq.output_token_ids and seq.num_computed_tokens == seq.num_tokens - 1
            prompt_tokens += 0 if is_decode else n
            seq.num_computed_tokens += n
            self.block_manager.cache_full_blocks(seq)
        self.metrics.prompt_tokens.inc(prompt_tokens)
        self.metrics.generation_tokens.inc(len(tokens))
        now = time.monotonic()
        outputs = []
        for seq, token in zip(seqs, tokens, strict=True):
            req = self._requests[seq.request_id]
            if seq.first_token_time is None:
                seq.first_token_time = now
                self.metrics.ttft.observe(now - seq.arrival_time)
                if seq.first_scheduled_time is not None:
                    self.metrics.queue_time.observe(seq.first_scheduled_time - seq.arrival_time)
            elif seq.last_token_time is not None:
                self.metrics.itl.observe(now - seq.last_token_time)
            seq.last_token_time = now
            seq.output_token_ids.append(token)
            reason: FinishReason | None = None
            if token in self._stop_ids and not seq.params.ignore_eos:
                text, reason = "", FinishReason.STOP
            else:
                text, stopped = req.text.add(token)
                if stopped:
                    reason = FinishReason.STOP
                elif len(seq.output_token_ids) >= seq.params.max_tokens or seq.num_tokens >= self.max_model_len:
                    reason = FinishReason.LENGTH
            if reason is None:
                out = self._output(seq, text, [token], None)
                if req.sink is not None:
                    req.sink(out)
            else:
                out = self._finish(req, reason, text, [token])
            outputs.append(out)
        return outputs

    def _output(self, seq: Sequence, text: str, token_ids: list[int], reason: FinishReason | None) -> RequestOutput:
        return RequestOutput(
            seq.request_id,
            text,
            token_ids,
            reason is not None,
            None if reason is None else reason.value,
            seq.num_prompt_tokens,
            len(seq.output_token_ids),
            seq.num_cached_tokens or 0,
        )

    def _finish(
        self, req: _Request, reason: FinishReason, text: str, token_ids: list[int] | None = None
    ) -> RequestOutput:
        seq = req.seq
        self.scheduler.finish(seq, reason)
        self.sampler.forget(seq.request_id)
        del self._requests[seq.request_id]
        self.metrics.requests.labels(finish_reason=reason.value).inc()
        self.metrics.e2e.observe(time.monotonic() - seq.arrival_time)
        out = self._output(
            seq, text + (req.text.finish() if reason is not FinishReason.ABORT else ""), token_ids or [], reason
        )
        if req.sink is not None:
            req.sink(out)
        return out

    def _fail_all(self) -> None:
        for req in list(self._requests.values()):
            self._finish(req, FinishReason.ERROR, "")

    def _record_step(self, batch: ScheduledBatch, duration_s: float, scheduled: tuple[int, int, int]) -> None:
        m = self.metrics
        if not self.scheduler.has_work:  # idle now: nothing will step again to update the gauges
            scheduled = (len(self.scheduler.running), self.num_waiting, self.block_manager.num_used_blocks)
        running, waiting, used = scheduled
        m.running.set(running)
        m.waiting.set(waiting)
        m.kv_used.set(used)
        m.kv_usage.set(used / self.block_manager.num_blocks)
        m.record_prefix_cache(self.scheduler, self.block_manager)
        new_preemptions = self.scheduler.num_preemptions - self._preemptions_seen
        if new_preemptions:
            m.preemptions.inc(new_preemptions)
            self._preemptions_seen = self.scheduler.num_preemptions
        if batch.seqs:
            m.batch_size.observe(len(batch))
            m.step_duration.observe(duration_s)

    # ---- offline use --------------------------------------------------------------------------

    def generate(
        self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams], max_steps: int = 1_000_000
    ) -> list[RequestOutput]:
        """Run prompts to completion on the calling thread (engine thread not started)."""
        if self._thread is not None:
            raise RuntimeError("generate() steps the engine itself; do not call it while start() runs")
        plist = params if isinstance(params, list) else [params] * len(prompts)
        ids = [f"gen-{time.monotonic_ns()}-{i}" for i in range(len(prompts))]
        results: dict[str, RequestOutput] = {}
        tokens: dict[str, list[int]] = {i: [] for i in ids}
        texts: dict[str, list[str]] = {i: [] for i in ids}

        def sink(out: RequestOutput) -> None:
            tokens[out.request_id].extend(out.token_ids)
            texts[out.request_id].append(out.text)
            if out.finished:
                results[out.request_id] = out

        for rid, prompt, p in zip(ids, prompts, plist, strict=True):
            self.add_request(rid, prompt, p, sink)
        for _ in range(max_steps):
            if not self.has_unfinished:
                break
            self.step()
        return [replace(results[i], text="".join(texts[i]), token_ids=tokens[i]) for i in ids]
