"""Trace replay: a Mooncake-style JSONL trace as a schedule of requests with shared prompt prefixes.

Each line is one request: ``timestamp`` (ms; the intended send time, relative to the first line and
divided by ``--speedup``), ``input_length`` and ``output_length`` (tokens) and ``hash_ids``, the
prompt's blocks of ``--trace-block-tokens`` tokens (512 in the Mooncake traces): two requests that
share a hash id share that block of prompt text, so the server's prefix cache sees the trace's
structure. A block's text is a run of vocabulary words drawn from the seed and the hash id, the same
in every request that uses it; the last block is cut to the request's length. Pure: the dispatcher
in ``loadgen/_process.py`` sends each request at its time.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from satscope.errors import SatscopeError

__all__ = ["TracePrompts", "TraceRequest", "check_trace_flags", "load_mooncake", "replay_envelope"]

_CACHED_BLOCKS = 4096  # block texts kept (an LRU): a long trace has more distinct hash ids than that
_TAIL_S = 1.0  # the replay's stage lasts this long past the last request's time
# flags a replay would ignore: the trace sets the load, its times and its sessions-free requests
_NOT_WITH_A_TRACE = (
    "--users", "--rate", "--duration", "--shape", "--stage-duration", "--start-load", "--steps", "--amplitude",
    "--period", "--stages", "--spawn-rate", "--arrival", "--cv", "--precision", "--budget", "--turns",
    "--think-time", "--workers", "--master",
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
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SatscopeError(f"cannot read trace {p}: {exc}", "check the --dataset path") from exc
    raw: list[tuple[float, int, int, tuple[int, ...]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            item = (float(entry["timestamp"]), int(entry["input_length"]), int(entry["output_length"]),
                    tuple(int(h) for h in entry.get("hash_ids") or ()))  # fmt: skip
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SatscopeError(
                f"trace {p} line {number} is not a Mooncake request ({type(exc).__name__}: {exc})",
                'write {"timestamp": MS, "input_length": N, "output_length": N, "hash_ids": [...]} per line',
            ) from None
        if item[1] < 1 or item[2] < 1 or item[0] < 0:
            raise SatscopeError(f"trace {p} line {number}: lengths must be >= 1 and the timestamp >= 0",
                                "fix or drop that line")  # fmt: skip
        raw.append(item)
    if not raw:
        raise SatscopeError(f"trace {p} has no requests", "write one JSON object per line")
    raw.sort(key=lambda r: r[0])
    first = raw[0][0]
    return [TraceRequest((t - first) / 1000.0, n_in, n_out, ids) for t, n_in, n_out, ids in raw]


class TracePrompts:
    """Prompt text for trace requests: the words of each hash id's block, the same wherever it appears."""

    def __init__(self, seed: int, block_tokens: int, tokens_per_word: float, vocabulary: tuple[str, ...]) -> None:
        if block_tokens < 1:
            raise SatscopeError(f"--trace-block-tokens {block_tokens} must be >= 1", "the traces' blocks: 512")
        self._seed = seed
        self._block_tokens = block_tokens
        self._tokens_per_word = tokens_per_word
        self._vocabulary = vocabulary
        self._blocks: OrderedDict[int, list[str]] = OrderedDict()
        self._unique = random.Random(f"{seed}/trace-unique")

    def prompt(self, request: TraceRequest) -> str:
        """``input_tokens`` worth of words: one block per hash id, the last one cut to the length."""
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


def check_trace_flags(given: set[str]) -> None:
    """SatscopeError for a flag that a trace replay would ignore (``given``: the flags typed)."""
    for flag in _NOT_WITH_A_TRACE:
        if flag in given:
            why = "runs in one load-generator process" if flag in ("--workers", "--master") else "sets the load"
            raise SatscopeError(f"{flag} is ignored by a trace replay: the trace {why}", f"drop {flag}")


def replay_envelope(path: str | Path, speedup: float) -> tuple[str, float]:
    """The open-loop stage that holds a replay: (``--rate`` as text: the trace's mean rate, ``--duration``:
    the last request's time after ``speedup`` plus a second)."""
    if not speedup > 0:
        raise SatscopeError(f"--speedup {speedup:g} must be > 0", "e.g. --speedup 10 replays 10x faster")
    trace = load_mooncake(path)
    duration = trace[-1].at_s / speedup + _TAIL_S
    return f"{len(trace) / duration:.6g}", duration
