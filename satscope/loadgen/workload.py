"""Workloads: synthetic prompts with length distributions, shared-prefix groups, ShareGPT files.

``Workload.next_request()`` returns a :class:`RequestSpec` (prompt text, intended prompt length,
``max_tokens``); it is deterministic for a seed, so two runs with the same seed send the same
requests in the same order (`satscope run` draws a fresh seed per run unless ``--seed`` is given,
so that reruns do not hit the server's prompt cache). Lengths are in tokens; a synthetic prompt is
built from short common words, and ``satscope/loadgen/calibrate.py`` measures the target's tokens per word
and its fixed overhead (chat template) so that a prompt of ``input_len`` tokens is what the server
counts. Every synthetic prompt starts (after its shared prefix, if the workload has one) with a
lead-in of :data:`LEAD_IN_WORDS` words that no other prompt of the process has, so prompts never
share more than a few words unless the workload asks for shared prefixes. With ``--tokenizer`` (the
target's own tokenizer, ``satscope/loadgen/tokenizer.py``) there is no calibration: words are counted once
before the load, every synthetic prompt is exactly ``input_len`` tokens, and dataset prompts are
counted for ``input_tokens``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from satscope.errors import SatscopeError
from satscope.loadgen.conversation import ThinkTime
from satscope.loadgen.conversations_file import SESSION_FORMATS, Conversation, first_exchange, load_conversations
from satscope.loadgen.distributions import DISTRIBUTIONS, draw
from satscope.loadgen.schedule_file import load_schedule
from satscope.loadgen.tokenizer import PromptTokenizer, WordCosts, load_prompt_tokenizer
from satscope.loadgen.trace import TracePrompts, TraceRequest, load_mooncake, trace_part

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
    ``messages``: ``satscope/loadgen/conversations_file.py``); ``turns`` > 1 makes every synthetic request a
    turn of a session (``satscope/loadgen/conversation.py``). A session's turns are ``think_time`` apart.
    ``mooncake`` is a trace to replay (``satscope/loadgen/trace.py``): its times ``speedup`` times faster, its
    prompts built of shared blocks of ``trace_block_tokens``; ``fixed_schedule`` replays any other
    dataset whose lines carry a ``timestamp`` the same way (``satscope/loadgen/schedule_file.py``).
    ``tokenizer``: the target's tokenizer.json, for exact prompt lengths (``prompt_overhead_tokens``
    is then its special tokens on completions, 0 on chat)."""

    input_len: LengthDist = LengthDist("fixed", 128)
    output_len: LengthDist = LengthDist("fixed", 128)
    prefix_groups: int = 0
    prefix_tokens: int = 0
    dataset: str | None = None
    ignore_eos: bool = True
    seed: int = 0
    tokens_per_word: float = 1.0  # the target's tokens per synthetic word (satscope/loadgen/calibrate.py)
    prompt_overhead_tokens: float = 0.0  # tokens the target adds to every prompt (chat template, BOS)
    turns: int = 1  # turns per session (1: independent requests)
    think_time: ThinkTime = field(default_factory=ThinkTime)  # between a turn's answer and the next turn of its session
    dataset_format: str = "sharegpt"  # or one of SESSION_FORMATS, or mooncake (a trace to replay)
    speedup: float = 1.0  # mooncake: the trace's times are divided by this
    trace_block_tokens: int = 512  # mooncake: tokens per hash id (prompt block)
    fixed_schedule: bool = False  # the dataset's lines are sent at their ``timestamp`` (ms)
    tokenizer: str | None = None  # a tokenizer.json: exact prompt lengths, no calibration

    def __post_init__(self) -> None:
        if self.fixed_schedule and (self.dataset is None or self.dataset_format == "mooncake"):
            raise SatscopeError(
                "--fixed-schedule replays a --dataset whose lines carry a timestamp",
                "add --dataset FILE (a mooncake trace keeps its schedule without the flag)",
            )
        if not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise SatscopeError(f"--speedup {self.speedup:g} must be > 0", "e.g. --speedup 10 replays 10x faster")
        if self.trace_block_tokens < 1:
            raise SatscopeError(f"--trace-block-tokens {self.trace_block_tokens} must be >= 1", "the traces' is 512")
        if self.dataset_format not in DATASET_FORMATS:
            raise SatscopeError(f"--dataset-format {self.dataset_format!r} unknown", f"use one of {DATASET_FORMATS}")
        if self.turns < 1:
            raise SatscopeError(f"--turns {self.turns}: a session has at least one turn", "e.g. --turns 4")
        if self.turns > 1 and self.dataset is not None:
            raise SatscopeError(
                "--turns makes synthetic sessions; a --dataset sends its own prompts",
                "drop one of --turns and --dataset",
            )
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
            "fixed_schedule": self.fixed_schedule,
            "tokenizer": self.tokenizer,
        }

    @property
    def trace(self) -> bool:
        """Whether the dataset is a trace to replay (its own schedule replaces the arrival process)."""
        return self.dataset is not None and (self.dataset_format == "mooncake" or self.fixed_schedule)

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
            fixed_schedule=d.get("fixed_schedule", False),
            tokenizer=d.get("tokenizer"),
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
    pairs = [pair for pair in (first_exchange(entry) for entry in entries) if pair is not None]
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
        tokenizer = None if config.tokenizer is None else load_prompt_tokenizer(config.tokenizer)
        self._costs = None if tokenizer is None else WordCosts(tokenizer, _WORDS)
        self._overhead = round(config.prompt_overhead_tokens)  # with a tokenizer: its BOS on completions
        prefix_rng = random.Random(f"{config.seed}/prefixes")  # same groups in every process
        self._prefixes = [self._words(prefix_rng, config.prefix_tokens) for _ in range(config.prefix_groups)]
        fixed = config.trace and config.dataset_format != "mooncake"
        conversations = config.dataset is not None and config.dataset_format in SESSION_FORMATS and not fixed
        sharegpt = config.dataset is not None and config.dataset_format == "sharegpt" and not fixed
        self._dataset = self._counted(load_sharegpt(config.dataset), tokenizer) if config.dataset and sharegpt else None
        if self._dataset:
            self._rng.shuffle(self._dataset)
        self._conversations = load_conversations(config.dataset, config.dataset_format) if conversations else None
        if self._conversations:
            self._rng.shuffle(self._conversations)
        self._next = 0
        # a replay's whole schedule, read before the load: (time before --speedup, request or None for a session)
        self._schedule: list[tuple[float, RequestSpec | _TraceSpec | None]] = []
        self._scheduled_sessions: list[Conversation] = []
        if config.trace and config.dataset is not None:
            self._schedule, self._scheduled_sessions = self._load_schedule(tokenizer)

    def _counted(self, pairs: list[tuple[str, int | None]], tokenizer: PromptTokenizer | None) -> list[_Prompt]:
        """Dataset prompts with their token counts as the target counts them (None without a tokenizer)."""
        counts = tokenizer.count_batch([p for p, _ in pairs]) if tokenizer else [None] * len(pairs)
        return [
            (p, reply, None if n is None else n + self._overhead) for (p, reply), n in zip(pairs, counts, strict=True)
        ]

    def _load_schedule(
        self, tokenizer: PromptTokenizer | None
    ) -> tuple[list[tuple[float, RequestSpec | _TraceSpec | None]], list[Conversation]]:
        cfg = self.config
        assert cfg.dataset is not None
        if cfg.dataset_format == "mooncake":
            prompts = TracePrompts(cfg.seed, cfg.trace_block_tokens, cfg.tokens_per_word, _WORDS, self._costs,
                                   self._overhead)  # fmt: skip
            trace = load_mooncake(cfg.dataset)
            # prompts are built when the dispatcher reaches them (words only, no tokenizing)
            return [(r.at_s, _TraceSpec(prompts, r)) for r in trace], []
        lines = load_schedule(cfg.dataset, cfg.dataset_format)
        if cfg.dataset_format in SESSION_FORMATS:
            return [(line.at_s, None) for line in lines], [line.conversation for line in lines if line.conversation]
        requests = self._counted([line.request for line in lines if line.request is not None], tokenizer)
        return [
            (line.at_s, RequestSpec(prompt, n, reply if reply is not None else cfg.output_len.sample(self._rng)))
            for line, (prompt, reply, n) in zip(lines, requests, strict=True)
        ], []

    def trace_requests(
        self, worker: str = "local", parts: int = 1
    ) -> Iterator[tuple[float, RequestSpec | None]] | None:
        """A replay's requests as (intended send time in seconds after the replay's start, request, or
        None for a session that starts then: :meth:`next_conversation` gives them in the same order);
        None when the workload is not a replay. Of ``parts`` load-generator processes, ``worker``
        (``satscope/loadgen/trace.py`` :func:`trace_part`) takes every ``parts``-th request, at its own time."""
        cfg = self.config
        if not cfg.trace:
            return None
        part = trace_part(worker, parts)
        if self._scheduled_sessions:
            self._conversations = self._scheduled_sessions[part::parts]
            self._next = 0
        return (
            (at_s / cfg.speedup, spec.build() if isinstance(spec, _TraceSpec) else spec)
            for at_s, spec in self._schedule[part::parts]
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
            prompt, reply_len, n_tokens = self._dataset[self._next % len(self._dataset)]
            self._next += 1
            max_tokens = reply_len if reply_len is not None else cfg.output_len.sample(rng)
            return RequestSpec(prompt=prompt, input_tokens=n_tokens, max_tokens=max_tokens)
        n_in = cfg.input_len.sample(rng)
        if self._costs is not None:  # exact: the prefix, the lead-in, then words to the length
            prefix = self._prefixes[rng.randrange(len(self._prefixes))].split() if self._prefixes else []
            lead = [*prefix, *self._lead_in(LEAD_IN_WORDS).split()]
            words = self._costs.prompt_words(rng, n_in - self._overhead, lead)
            return RequestSpec(prompt=" ".join(words), input_tokens=n_in, max_tokens=cfg.output_len.sample(rng))
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
        if self._costs is not None:
            return " ".join(self._costs.prompt_words(rng, n_tokens))
        return synthetic_words(rng, max(1, round(n_tokens / self.config.tokens_per_word)))


_Prompt = tuple[str, int | None, int | None]  # a dataset prompt, its answer length in words, its tokens


class _TraceSpec(NamedTuple):
    """A trace request whose prompt is built when the dispatcher reaches it (a long trace's prompts
    would not all fit in memory)."""

    prompts: TracePrompts
    request: TraceRequest

    def build(self) -> RequestSpec:
        r = self.request
        return RequestSpec(self.prompts.prompt(r), r.input_tokens, r.output_tokens)


def synthetic_words(rng: random.Random, n: int) -> str:
    """``n`` short common words: one token each for the BPE tokenizers we know."""
    return " ".join(rng.choice(_WORDS) for _ in range(n))
