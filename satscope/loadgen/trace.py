"""Trace replay: a Mooncake-style JSONL trace as a schedule of requests with shared prompt prefixes.

Each line is one request: ``timestamp`` (ms; the intended send time, relative to the first line and
divided by ``--speedup``), ``input_length`` and ``output_length`` (tokens) and ``hash_ids``, the
prompt's blocks of ``--trace-block-tokens`` tokens (512 in the Mooncake traces): two requests that
share a hash id share that block of prompt text, so the server's prefix cache sees the trace's
structure. A block's text is a run of vocabulary words drawn from the seed and the hash id, the same
in every request that uses it; the last block is cut to the request's length (with ``--tokenizer``,
blocks and prompts are exact token counts: ``satscope/loadgen/tokenizer.py``). Pure: the dispatcher in
``satscope/loadgen/_process.py`` sends each request at its time. With ``--workers N`` each load-generator
process replays every N-th request (:func:`trace_part`), at the trace's own times.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from satscope.errors import SatscopeError
from satscope.loadgen.timed_jsonl import read_timed_lines

if TYPE_CHECKING:
    from satscope.loadgen.tokenizer import WordCosts

__all__ = [
    "TracePrompts",
    "TraceRequest",
    "check_replay_flags",
    "check_trace_flags",
    "load_mooncake",
    "replay_envelope",
    "trace_part",
]

_CACHED_BLOCKS = 4096  # block texts kept (an LRU): a long trace has more distinct hash ids than that
_TAIL_S = 1.0  # the replay's stage lasts this long past the last request's time
# flags a replay would ignore: the trace sets the load and its times, and its requests are the file's
_NOT_WITH_A_TRACE = (
    "--users", "--rate", "--duration", "--shape", "--stage-duration", "--start-load", "--steps", "--amplitude",
    "--period", "--stages", "--spawn-rate", "--arrival", "--cv", "--precision", "--budget", "--turns",
    "--think-time",
)  # fmt: skip


class TraceRequest(NamedTuple):
    """One line of the trace: seconds after the first line (before ``--speedup``), lengths in tokens."""

    at_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...]


def load_mooncake(path: str | Path) -> list[TraceRequest]:
    """The trace's requests in time order; a line without the four fields is a one-line error naming it."""
    p = Path(path)

    def parse(line: str, number: int) -> tuple[float, tuple[int, int, tuple[int, ...]]]:
        try:
            entry = json.loads(line)
            at_ms, n_in, n_out = float(entry["timestamp"]), int(entry["input_length"]), int(entry["output_length"])
            ids = tuple(int(h) for h in entry.get("hash_ids") or ())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SatscopeError(
                f"trace {p} line {number} is not a Mooncake request ({type(exc).__name__}: {exc})",
                'write {"timestamp": MS, "input_length": N, "output_length": N, "hash_ids": [...]} per line',
            ) from None
        if n_in < 1 or n_out < 1 or at_ms < 0:
            raise SatscopeError(f"trace {p} line {number}: lengths must be >= 1 and the timestamp >= 0",
                                "fix or drop that line")  # fmt: skip
        return at_ms, (n_in, n_out, ids)

    timed = read_timed_lines(p, "trace", parse, (f"trace {p} has no requests", "write one JSON object per line"))
    return [TraceRequest(at_s, n_in, n_out, ids) for at_s, (n_in, n_out, ids) in timed]


class TracePrompts:
    """Prompt text for trace requests: the words of each hash id's block, the same wherever it appears."""

    def __init__(
        self,
        seed: int,
        block_tokens: int,
        tokens_per_word: float,
        vocabulary: tuple[str, ...],
        costs: WordCosts | None = None,
        overhead_tokens: int = 0,
    ) -> None:
        if block_tokens < 1:
            raise SatscopeError(f"--trace-block-tokens {block_tokens} must be >= 1", "the traces' blocks: 512")
        self._seed = seed
        self._block_tokens = block_tokens
        self._tokens_per_word = tokens_per_word
        self._vocabulary = vocabulary
        self._costs = costs  # --tokenizer: blocks of exactly block_tokens tokens, prompts of exactly input_tokens
        self._overhead = overhead_tokens  # what the target adds to every prompt (the tokenizer's BOS)
        self._blocks: OrderedDict[int, list[str]] = OrderedDict()
        self._unique = random.Random(f"{seed}/trace-unique")

    def prompt(self, request: TraceRequest) -> str:
        """``input_tokens`` worth of words: one block per hash id, the last one cut to the length."""
        if self._costs is not None:
            lead = [w for hash_id in request.hash_ids for w in self._exact_block(hash_id)]
            return " ".join(self._costs.prompt_words(self._unique, request.input_tokens - self._overhead, lead))
        if not request.hash_ids:
            return " ".join(self._unique.choice(self._vocabulary) for _ in range(self._words(request.input_tokens)))
        parts = []
        last = len(request.hash_ids) - 1
        for i, hash_id in enumerate(request.hash_ids):
            tokens = self._block_tokens if i < last else request.input_tokens - self._block_tokens * last
            parts.append(" ".join(self._block(hash_id, self._words(max(tokens, 1)))))
        return " ".join(parts)

    def _words(self, tokens: int) -> int:
        return max(1, round(tokens / self._tokens_per_word))

    def _exact_block(self, hash_id: int) -> list[str]:
        """The hash id's block as words worth exactly ``block_tokens`` tokens (after a space)."""
        assert self._costs is not None
        block = self._blocks.get(hash_id)
        if block is None:
            block = self._costs.fill(random.Random(f"{self._seed}/block/{hash_id}"), self._block_tokens)
            self._blocks[hash_id] = block
        self._blocks.move_to_end(hash_id)
        if len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return block

    def _block(self, hash_id: int, words: int) -> list[str]:
        """The first ``words`` words of the hash id's block (a fixed sequence: shorter cuts are its prefixes)."""
        block = self._blocks.get(hash_id)
        if block is None or len(block) < words:
            rng = random.Random(f"{self._seed}/block/{hash_id}")
            block = [rng.choice(self._vocabulary) for _ in range(max(words, self._words(self._block_tokens)))]
            self._blocks[hash_id] = block
        self._blocks.move_to_end(hash_id)
        if len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return block[:words]


def check_replay_flags(given: set[str], has_dataset: bool, dataset_format: str, fixed_schedule: bool) -> bool:
    """SatscopeError for a replay's flag out of place (``given``: the flags typed); True when the run
    replays its dataset at the file's times (a mooncake trace, or ``--fixed-schedule``)."""
    from satscope.loadgen.conversations_file import SESSION_FORMATS

    if fixed_schedule and (not has_dataset or dataset_format == "mooncake"):
        raise SatscopeError("--fixed-schedule replays a --dataset whose lines carry a timestamp",
                            "add --dataset FILE (a mooncake trace keeps its schedule without the flag)")  # fmt: skip
    replay = has_dataset and (dataset_format == "mooncake" or fixed_schedule)
    if replay:
        check_trace_flags(given, sessions=dataset_format in SESSION_FORMATS)
        if "--trace-block-tokens" in given and dataset_format != "mooncake":
            raise SatscopeError("--trace-block-tokens is for a mooncake trace", "drop --trace-block-tokens")
    elif "--speedup" in given or "--trace-block-tokens" in given:
        raise SatscopeError("--speedup and --trace-block-tokens are for a trace replay",
                            "add --dataset TRACE.jsonl --dataset-format mooncake (or --fixed-schedule)")  # fmt: skip
    return replay


def check_trace_flags(given: set[str], sessions: bool = False) -> None:
    """SatscopeError for a flag that a replay would ignore (``given``: the flags typed); ``sessions``:
    the replay's lines are sessions, whose turns are ``--think-time`` apart."""
    for flag in _NOT_WITH_A_TRACE:
        if flag in given and not (sessions and flag == "--think-time"):
            raise SatscopeError(f"{flag} is ignored by a trace replay: the file's times set the load", f"drop {flag}")


def trace_part(worker: str, parts: int) -> int:
    """Which of ``parts`` load-generator processes ``worker`` is: ``local`` (one process) is 0, and
    workers are named ``w0`` … ``w{parts-1}`` (the local workers by `satscope run`, remote ones by the
    master); process k replays the requests k, k + parts, k + 2 parts, … of the schedule."""
    if parts <= 1:
        return 0
    index = worker[1:]
    if not (worker.startswith("w") and index.isdigit() and int(index) < parts):
        raise SatscopeError(f"worker {worker!r} has no place among the replay's {parts} processes",
                            "let `satscope run --workers N` or the master name the workers")  # fmt: skip
    return int(index)


def replay_envelope(path: str | Path, speedup: float, fmt: str = "mooncake") -> tuple[str, float]:
    """The open-loop stage that holds a replay: (``--rate`` as text: the file's mean rate, ``--duration``:
    the last request's time after ``speedup`` plus a second). ``fmt``: ``mooncake``, or the format of a
    ``--fixed-schedule`` dataset (``satscope/loadgen/schedule_file.py``)."""
    if not speedup > 0:
        raise SatscopeError(f"--speedup {speedup:g} must be > 0", "e.g. --speedup 10 replays 10x faster")
    if fmt == "mooncake":
        times = [r.at_s for r in load_mooncake(path)]
    else:
        from satscope.loadgen.schedule_file import load_schedule

        times = [line.at_s for line in load_schedule(path, fmt)]
    duration = times[-1] / speedup + _TAIL_S
    return f"{len(times) / duration:.6g}", duration
