"""Workloads: synthetic prompts with length distributions, shared-prefix groups, ShareGPT files.

``Workload.next_request()`` returns a :class:`RequestSpec` (prompt text, intended prompt length,
``max_tokens``); it is deterministic for a seed, so two runs with the same seed send the same
requests in the same order. Lengths are in tokens; a synthetic prompt is built from short common
words, one token each for the BPE tokenizers we know (the server's ``usage`` says the truth).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satscope.errors import SatscopeError

__all__ = [
    "DISTRIBUTIONS",
    "LengthDist",
    "RequestSpec",
    "Workload",
    "WorkloadConfig",
    "load_sharegpt",
    "synthetic_words",
]

DISTRIBUTIONS = ("fixed", "uniform", "normal", "lognormal")
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
        if self.kind == "fixed":
            value = float(self.mean)
        elif self.kind == "uniform":
            value = rng.uniform(self.mean - self.spread, self.mean + self.spread)
        elif self.kind == "normal":
            value = rng.gauss(self.mean, self.spread)
        else:
            value = self.mean * math.exp(rng.gauss(0.0, self.spread))
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
    """What to send. ``dataset`` (ShareGPT JSON/JSONL) replaces synthetic prompts."""

    input_len: LengthDist = LengthDist("fixed", 128)
    output_len: LengthDist = LengthDist("fixed", 128)
    prefix_groups: int = 0
    prefix_tokens: int = 0
    dataset: str | None = None
    ignore_eos: bool = True
    seed: int = 0
    tokens_per_word: float = 1.0  # the target's tokens per synthetic word (loadgen/calibrate.py)

    def __post_init__(self) -> None:
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
        }

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
        prefix_rng = random.Random(f"{config.seed}/prefixes")  # same groups in every process
        self._prefixes = [self._words(prefix_rng, config.prefix_tokens) for _ in range(config.prefix_groups)]
        self._dataset = load_sharegpt(config.dataset) if config.dataset else None
        if self._dataset:
            self._rng.shuffle(self._dataset)
        self._next = 0

    def next_request(self) -> RequestSpec:
        cfg, rng = self.config, self._rng
        if self._dataset is not None:
            prompt, reply_len = self._dataset[self._next % len(self._dataset)]
            self._next += 1
            max_tokens = reply_len if reply_len is not None else cfg.output_len.sample(rng)
            return RequestSpec(prompt=prompt, input_tokens=None, max_tokens=max_tokens)
        n_in = cfg.input_len.sample(rng)
        parts = []
        if self._prefixes:
            parts.append(self._prefixes[rng.randrange(len(self._prefixes))])
            n_in = max(n_in - cfg.prefix_tokens, 1)
        parts.append(self._words(rng, n_in))
        total = n_in + (cfg.prefix_tokens if self._prefixes else 0)
        return RequestSpec(prompt=" ".join(parts), input_tokens=total, max_tokens=cfg.output_len.sample(rng))


    def _words(self, rng: random.Random, n_tokens: int) -> str:
        return synthetic_words(rng, max(1, round(n_tokens / self.config.tokens_per_word)))


def synthetic_words(rng: random.Random, n: int) -> str:
    """``n`` short common words: one token each for the BPE tokenizers we know."""
    return " ".join(rng.choice(_WORDS) for _ in range(n))
