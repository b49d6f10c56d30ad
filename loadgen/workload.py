"""Workloads: synthetic prompts with length distributions, shared-prefix groups, ShareGPT files.

``Workload.next_request()`` returns a :class:`RequestSpec` (prompt text, intended prompt length,
``max_tokens``); it is deterministic for a seed, so two runs with the same seed send the same
requests in the same order (`satscope run` draws a fresh seed per run unless ``--seed`` is given,
so that reruns do not hit the server's prompt cache). Lengths are in tokens; a synthetic prompt is
built from short common words, and ``loadgen/calibrate.py`` measures the target's tokens per word
and its fixed overhead (chat template) so that a prompt of ``input_len`` tokens is what the server
counts. Every synthetic prompt starts (after its shared prefix, if the workload has one) with a
lead-in of :data:`LEAD_IN_WORDS` words that no other prompt of the process has, so prompts never
share more than a few words unless the workload asks for shared prefixes.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.conversation import ThinkTime
from loadgen.conversations_file import SESSION_FORMATS, Conversation, load_conversations
from loadgen.distributions import DISTRIBUTIONS, draw
from loadgen.trace import TracePrompts, load_mooncake
from satscope.errors import SatscopeError

__all__ = [
    "DISTRIBUTIONS",
    "LEAD_IN_WORDS",
    "VOCABULARY",
    "LengthDist",
    "RequestSpec",
    "Workload",
    "WorkloadConfig",
    "fresh_seed",
    "load_sharegpt",
    "synthetic_words",
]

DATASET_FORMATS = ("sharegpt", *SESSION_FORMATS, "mooncake")
_WORDS = tuple(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "it",
        "for",
        "on",
        "with",
        "as",
        "at",
        "by",
        "be",
        "this",
        "that",
        "from",
        "or",
        "an",
        "are",
        "was",
        "you",
        "we",
        "can",
        "all",
        "one",
        "has",
        "but",
        "not",
        "what",
        "out",
        "up",
        "so",
        "if",
        "no",
        "my",
        "more",
        "time",
        "how",
        "day",
        "way",
        "new",
        "she",
        "he",
        "his",
        "her",
    ]
)

VOCABULARY = _WORDS
LEAD_IN_WORDS = 7  # 46**7 = 4.4e11 distinct lead-ins
_LEAD_IN_SPACE = len(_WORDS) ** LEAD_IN_WORDS
_LEAD_IN_STEP = 2654435761  # coprime with 46**7 (odd, not a multiple of 23): a bijection of seq


def fresh_seed() -> int:
    """A seed for a run that gave no ``--seed``: another run's prompts are not these."""
    import secrets

    return secrets.randbelow(2**31)


@dataclass(slots=True, frozen=True)
class LengthDist:
    """A token-length distribution: ``fixed`` (mean), ``uniform`` (mean ± spread),
    ``normal`` (mean, sd = spread), ``lognormal`` (median = mean, sigma = spread)."""

    kind: str = "fixed"
    mean: int = 128
    spread: float = 0.0
    minimum: int = 1
    maximum: int = 32768

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTIONS:
            raise SatscopeError(f"length distribution {self.kind!r} unknown", f"use one of {DISTRIBUTIONS}")
        if self.mean < 1 or self.minimum < 1 or self.maximum < self.minimum:
            raise SatscopeError(
                f"length {self.mean} (min {self.minimum}, max {self.maximum}) is invalid",
                "lengths are >= 1 token and max >= min",
            )
        if self.spread < 0:
            raise SatscopeError("a length spread must be >= 0", "use 0 for a fixed length")

    def sample(self, rng: random.Random) -> int:
        value = draw(self.kind, self.mean, self.spread, rng)
        return int(min(max(round(value), self.minimum), self.maximum))

    @classmethod
    def parse(cls, text: str) -> LengthDist:
        """``128``, ``fixed:128``, ``uniform:128:32``, ``normal:128:20``, ``lognormal:128:0.5``."""
        parts = text.split(":")
        try:
            if len(parts) == 1:
                return cls("fixed", int(parts[0]))
            kind, mean, spread = parts[0], int(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0
        except (ValueError, IndexError) as exc:
            raise SatscopeError(
                f"cannot read length {text!r}", "write N, or KIND:MEAN[:SPREAD] e.g. lognormal:128:0.5"
            ) from exc
        return cls(kind, mean, spread)


@dataclass(slots=True, frozen=True)
class RequestSpec:
    """One request to send: the prompt and what we asked for."""

    prompt: str
    input_tokens: int | None
    max_tokens: int | None


@dataclass(slots=True, frozen=True)
class WorkloadConfig:
    """What to send. ``dataset`` replaces synthetic prompts: ShareGPT's first human turns
    (``dataset_format`` ``sharegpt``) or whole conversations as sessions (``sharegpt-sessions``,
    ``messages``: ``loadgen/conversations_file.py``); ``turns`` > 1 makes every synthetic request a
    turn of a session (``loadgen/conversation.py``). A session's turns are ``think_time`` apart.
    ``mooncake`` is a trace to replay (``loadgen/trace.py``): its times ``speedup`` times faster, its
    prompts built of shared blocks of ``trace_block_tokens``."""

    input_len: LengthDist = LengthDist("fixed", 128)
    output_len: LengthDist = LengthDist("fixed", 128)
    prefix_groups: int = 0
    prefix_tokens: int = 0
    dataset: str | None = None
    ignore_eos: bool = True
    seed: int = 0
    tokens_per_word: float = 1.0  # the target's tokens per synthetic word (loadgen/calibrate.py)
    prompt_overhead_tokens: float = 0.0  # tokens the target adds to every prompt (chat template, BOS)
    turns: int = 1  # turns per session (1: independent requests)
    think_time: ThinkTime = field(default_factory=ThinkTime)  # between a turn's answer and the next turn of its session
    dataset_format: str = "sharegpt"  # or one of SESSION_FORMATS, or mooncake (a trace to replay)
    speedup: float = 1.0  # mooncake: the trace's times are divided by this
    trace_block_tokens: int = 512  # mooncake: tokens per hash id (prompt block)

    def __post_init__(self) -> None:
        if not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise SatscopeError(f"--speedup {self.speedup:g} must be > 0", "e.g. --speedup 10 replays 10x faster")
        if self.trace_block_tokens < 1:
            raise SatscopeError(f"--trace-block-tokens {self.trace_block_tokens} must be >= 1", "the traces' is 512")
        if self.dataset_format not in DATASET_FORMATS:
            raise SatscopeError(f"--dataset-format {self.dataset_format!r} unknown", f"use one of {DATASET_FORMATS}")
        if self.turns < 1:
            raise SatscopeError(f"--turns {self.turns}: a session has at least one turn", "e.g. --turns 4")
        if self.turns > 1 and self.dataset is not None:
            raise SatscopeError("--turns makes synthetic sessions; a --dataset sends its own prompts",
                                "drop one of --turns and --dataset")
        if not 0.05 <= self.tokens_per_word <= 64:
            raise SatscopeError(f"tokens_per_word={self.tokens_per_word} is implausible", "expected 0.05 to 64")
        if self.prefix_groups < 0 or self.prefix_tokens < 0:
            raise SatscopeError("prefix groups and prefix tokens must be >= 0", "use 0 to turn prefixes off")
        if (self.prefix_groups > 0) != (self.prefix_tokens > 0):
            raise SatscopeError("shared prefixes need both --prefix-groups and --prefix-tokens", "set both, or neither")

    def to_json(self) -> dict[str, Any]:
        return {
            "input_len": _dist_json(self.input_len),
            "output_len": _dist_json(self.output_len),
            "prefix_groups": self.prefix_groups,
            "prefix_tokens": self.prefix_tokens,
            "dataset": self.dataset,
            "ignore_eos": self.ignore_eos,
            "seed": self.seed,
            "tokens_per_word": self.tokens_per_word,
            "prompt_overhead_tokens": self.prompt_overhead_tokens,
            "turns": self.turns,
            "think_time": self.think_time.to_json(),
            "dataset_format": self.dataset_format,
            "speedup": self.speedup,
            "trace_block_tokens": self.trace_block_tokens,
        }

    @property
    def trace(self) -> bool:
        """Whether the dataset is a trace to replay (its own schedule replaces the arrival process)."""
        return self.dataset is not None and self.dataset_format == "mooncake"

    @property
    def sessions(self) -> bool:
        """Whether requests are turns of sessions: synthetic ``turns`` > 1, or a conversation file."""
        return self.turns > 1 or (self.dataset is not None and self.dataset_format in SESSION_FORMATS)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WorkloadConfig:
        return cls(
            input_len=LengthDist(**d["input_len"]),
            output_len=LengthDist(**d["output_len"]),
            prefix_groups=d["prefix_groups"],
            prefix_tokens=d["prefix_tokens"],
            dataset=d["dataset"],
            ignore_eos=d["ignore_eos"],
            seed=d["seed"],
            tokens_per_word=d.get("tokens_per_word", 1.0),
            prompt_overhead_tokens=d.get("prompt_overhead_tokens", 0.0),
            turns=d.get("turns", 1),
            think_time=ThinkTime.from_json(d["think_time"]) if "think_time" in d else ThinkTime(),
            dataset_format=d.get("dataset_format", "sharegpt"),
            speedup=d.get("speedup", 1.0),
            trace_block_tokens=d.get("trace_block_tokens", 512),
        )


def _dist_json(d: LengthDist) -> dict[str, Any]:
    return {"kind": d.kind, "mean": d.mean, "spread": d.spread, "minimum": d.minimum, "maximum": d.maximum}


def load_sharegpt(path: str | Path) -> list[tuple[str, int | None]]:
    """(prompt, reply length in words or None) pairs from a ShareGPT JSON list or JSONL file.

    Each entry has ``conversations`` (or ``conversation``) turns with ``from``/``value`` (or
    ``role``/``content``); the first human turn is the prompt, the following reply its length.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SatscopeError(f"cannot read dataset {p}: {exc}", "check the --dataset path") from exc
    try:
        stripped = text.lstrip()
        entries = (
            json.loads(text)
            if stripped.startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise SatscopeError(f"dataset {p} is not JSON or JSONL: {exc}", "use ShareGPT format") from exc
    pairs: list[tuple[str, int | None]] = []
    for entry in entries:
        turns = entry.get("conversations") or entry.get("conversation") if isinstance(entry, dict) else None
        if not isinstance(turns, list):
            continue
        for i, turn in enumerate(turns):
            role = turn.get("from", turn.get("role"))
            if role in ("human", "user"):
                prompt = str(turn.get("value", turn.get("content", "")))
                reply = turns[i + 1] if i + 1 < len(turns) else None
                reply_len = len(str(reply.get("value", reply.get("content", ""))).split()) if reply else None
                if prompt:
                    pairs.append((prompt, reply_len or None))
                break
    if not pairs:
        raise SatscopeError(
            f"dataset {p} has no conversations with a human turn",
            'use ShareGPT format: [{"conversations": [{"from": "human", ...}]}]',
        )
    return pairs


class Workload:
    """Deterministic stream of requests for one load-generator process (``stream_id`` seeds it)."""

    def __init__(self, config: WorkloadConfig, stream_id: int = 0) -> None:
        self.config = config
        self._rng = random.Random(f"{config.seed}/{stream_id}")
        self._lead_in_base = random.Random(f"{config.seed}/lead-in/{stream_id}").randrange(_LEAD_IN_SPACE)
        self._seq = 0
        prefix_rng = random.Random(f"{config.seed}/prefixes")  # same groups in every process
        self._prefixes = [self._words(prefix_rng, config.prefix_tokens) for _ in range(config.prefix_groups)]
        conversations = config.dataset is not None and config.dataset_format in SESSION_FORMATS
        sharegpt = config.dataset is not None and config.dataset_format == "sharegpt"
        self._dataset = load_sharegpt(config.dataset) if config.dataset and sharegpt else None
        if self._dataset:
            self._rng.shuffle(self._dataset)
        self._conversations = load_conversations(config.dataset, config.dataset_format) if conversations else None
        if self._conversations:
            self._rng.shuffle(self._conversations)
        self._next = 0

    def trace_requests(self) -> Iterator[tuple[float, RequestSpec]] | None:
        """A trace's requests as (intended send time in seconds after the replay's start, request);
        None when the workload is not a trace."""
        cfg = self.config
        if not cfg.trace or cfg.dataset is None:
            return None
        trace = load_mooncake(cfg.dataset)
        prompts = TracePrompts(cfg.seed, cfg.trace_block_tokens, cfg.tokens_per_word, _WORDS)
        return (
            (r.at_s / cfg.speedup, RequestSpec(prompts.prompt(r), r.input_tokens, r.output_tokens)) for r in trace
        )

    def next_conversation(self) -> tuple[tuple[str, ...], tuple[RequestSpec, ...]] | None:
        """The next session's script from a conversation file: its system messages and one request per
        user turn (``max_tokens``: the file's answer length, else ``output_len``); None for synthetic sessions."""
        if self._conversations is None:
            return None
        conversation: Conversation = self._conversations[self._next % len(self._conversations)]
        self._next += 1
        specs = tuple(
            RequestSpec(prompt, None, reply if reply is not None else self.config.output_len.sample(self._rng))
            for prompt, reply in conversation.turns
        )
        return conversation.system, specs

    def next_request(self) -> RequestSpec:
        cfg, rng = self.config, self._rng
        if self._dataset is not None:
            prompt, reply_len = self._dataset[self._next % len(self._dataset)]
            self._next += 1
            max_tokens = reply_len if reply_len is not None else cfg.output_len.sample(rng)
            return RequestSpec(prompt=prompt, input_tokens=None, max_tokens=max_tokens)
        n_in = cfg.input_len.sample(rng)
        # rounded at random, up with the fraction's probability: the mean length is exact
        words = max(1, int((n_in - cfg.prompt_overhead_tokens) / cfg.tokens_per_word + rng.random()))
        parts = []
        if self._prefixes:
            prefix = self._prefixes[rng.randrange(len(self._prefixes))]
            parts.append(prefix)
            words = max(1, words - prefix.count(" ") - 1)
        lead = min(LEAD_IN_WORDS, words)
        parts.append(self._lead_in(lead))
        if words > lead:
            parts.append(synthetic_words(rng, words - lead))
        return RequestSpec(prompt=" ".join(parts), input_tokens=n_in, max_tokens=cfg.output_len.sample(rng))

    def _lead_in(self, n_words: int) -> str:
        """This process's next unique number in base 46, as words (the first word changes most)."""
        self._seq += 1
        value = (self._lead_in_base + self._seq * _LEAD_IN_STEP) % _LEAD_IN_SPACE
        digits = []
        for _ in range(LEAD_IN_WORDS):
            value, digit = divmod(value, len(_WORDS))
            digits.append(_WORDS[digit])
        return " ".join(digits[:n_words])

    def _words(self, rng: random.Random, n_tokens: int) -> str:
        return synthetic_words(rng, max(1, round(n_tokens / self.config.tokens_per_word)))


def synthetic_words(rng: random.Random, n: int) -> str:
    """``n`` short common words: one token each for the BPE tokenizers we know."""
    return " ".join(rng.choice(_WORDS) for _ in range(n))
