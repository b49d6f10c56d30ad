"""``--tokenizer PATH``: the target's own Hugging Face tokenizer, for prompts of exactly ``--input-len`` tokens.

Loaded with the ``tokenizers`` library (only in the ``server`` extra: a light install says how to
add it). A synthetic prompt is a run of vocabulary words separated by spaces, and the tokenizers of
the models we know split text at spaces before they merge (byte-level BPE, SentencePiece's
metaspace, WordPiece), so a prompt's token count is the sum of its words' counts plus the tokens the
tokenizer adds to every prompt (a BOS). :class:`WordCosts` counts each vocabulary word once, before
the load, checks that the sums are exact on sample prompts, and from then on builds prompts of an
exact length by arithmetic: nothing is tokenized per request. Dataset prompts are counted once, in
one batch, when the dataset is loaded (``satscope/loadgen/workload.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from satscope.errors import SatscopeError

__all__ = ["PromptTokenizer", "WordCosts", "load_prompt_tokenizer", "run_settings", "tokenizer_file"]

_REACH_LIMIT = 512  # exact finishes are planned for remainders up to this many tokens
_CHECK_LENGTHS = (1, 2, 3, 5, 17, 64, 301)  # sample prompts whose counts must equal the sums


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer.json that ``path`` names: the file itself, or the one in the folder."""
    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise SatscopeError(
            f"--tokenizer {p}: {file} not found", "pass a Hugging Face tokenizer.json or the model folder that holds it"
        )
    return file


def load_prompt_tokenizer(path: str | Path) -> PromptTokenizer:
    """The tokenizer at ``path``; a one-line SatscopeError when it cannot be loaded."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise SatscopeError(
            "--tokenizer needs the tokenizers package, which this install lacks", "pip install tokenizers"
        ) from None
    file = tokenizer_file(path)
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot read
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SatscopeError(
            f"--tokenizer {file} is not a Hugging Face tokenizer.json ({why})",
            "pass the tokenizer.json of the served model (or its folder)",
        ) from None
    return PromptTokenizer(tok, file)


def run_settings(path: str | Path, endpoint: str) -> tuple[str, int, str | None]:
    """For `satscope run --tokenizer PATH`, before any load: (the tokenizer.json's absolute path, the
    tokens the target adds to every prompt as the client can know them: the tokenizer's own on
    completions, 0 on chat, whose template is the server's; a note when lengths will not be exact)."""
    from satscope.loadgen.workload import VOCABULARY

    tokenizer = load_prompt_tokenizer(path)
    overhead = tokenizer.special_tokens if endpoint == "completions" else 0
    exact = WordCosts(tokenizer, VOCABULARY).exact
    note = None if exact else f"{tokenizer.file} merges across spaces: prompt lengths are close, not exact"
    return str(tokenizer.file.resolve()), overhead, note


class PromptTokenizer:
    """Counts as a server counts: ``special_tokens`` is what the tokenizer adds to any prompt (a BOS:
    a completions prompt is ``special_tokens + count(text)`` tokens); ``count`` is the text's own tokens."""

    def __init__(self, tokenizer: Any, file: Path) -> None:
        self._tok = tokenizer
        self.file = file
        self.special_tokens = len(tokenizer.encode("", add_special_tokens=True).ids)

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts in one call (the library spreads it over the cores)."""
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]


class WordCosts:
    """The tokens each vocabulary word costs at the start of a prompt (``first``) and after a space
    (``mid``), and prompts of an exact token count built from them. ``exact`` says whether the sums
    were exact on sample prompts (a tokenizer that merges across spaces makes them approximate)."""

    def __init__(self, tokenizer: PromptTokenizer, vocabulary: Sequence[str]) -> None:
        words = list(dict.fromkeys(vocabulary))
        anchor = words[0]
        base = tokenizer.count(anchor)
        firsts = tokenizer.count_batch(words)
        mids = [c - base for c in tokenizer.count_batch([f"{anchor} {w}" for w in words])]
        self.first = dict(zip(words, firsts, strict=True))
        self.mid = dict(zip(words, mids, strict=True))
        self._words = [w for w in words if self.mid[w] >= 1]
        if not self._words:
            raise SatscopeError(
                f"--tokenizer {tokenizer.file} gives the prompt words no tokens", "use another tokenizer"
            )
        self._by_cost: dict[int, list[str]] = {}
        for w in self._words:
            self._by_cost.setdefault(self.mid[w], []).append(w)
        # step[r]: a word cost that leaves a reachable remainder (0 is reachable); None: r is not reachable
        self._step: list[int | None] = [0] + [None] * _REACH_LIMIT
        costs = sorted(self._by_cost, reverse=True)
        for r in range(1, _REACH_LIMIT + 1):
            self._step[r] = next((c for c in costs if c <= r and self._step[r - c] is not None), None)
        unreachable = [r for r in range(1, _REACH_LIMIT + 1) if self._step[r] is None]
        # random words while more than ``_span`` remain: what is left then is always reachable
        self._span = min((unreachable[-1] if unreachable else 0) + max(costs), _REACH_LIMIT)
        self.exact = self._check(tokenizer)

    def cost(self, words: Iterable[str]) -> int:
        """Tokens of the words joined by spaces (without the tokenizer's special tokens)."""
        total = 0
        for i, w in enumerate(words):
            total += self.first[w] if i == 0 else self.mid[w]
        return total

    def prompt_words(self, rng: random.Random, tokens: int, lead: Sequence[str] = ()) -> list[str]:
        """Words worth exactly ``tokens`` tokens (as near as the vocabulary allows for a few tokens
        that no words add up to): the ``lead`` words while they fit, then random words."""
        out: list[str] = []
        used = 0
        for w in lead:
            c = self.first[w] if not out else self.mid[w]
            if used + c > tokens:
                break
            out.append(w)
            used += c
        while out and not self._reachable(tokens - used):  # no words add up to what is left: give some back
            w = out.pop()
            used -= self.first[w] if not out else self.mid[w]
        rest = tokens - used
        if not out and rest > 0:  # the first word, priced at the start of the prompt
            fits = [w for w in self._words if self.first[w] <= rest and self._reachable(rest - self.first[w])]
            first = rng.choice(fits or self._words)
            out.append(first)
            rest -= self.first[first]
        return out + self.fill(rng, rest)

    def fill(self, rng: random.Random, tokens: int) -> list[str]:
        """Words (each after a space) worth exactly ``tokens`` tokens, or the most below it that the
        vocabulary reaches."""
        out: list[str] = []
        while tokens > self._span:
            w = rng.choice(self._words)
            out.append(w)
            tokens -= self.mid[w]
        while tokens > 0 and self._step[tokens] is None:
            tokens -= 1
        while tokens > 0:
            step = self._step[tokens]
            assert step is not None
            out.append(rng.choice(self._by_cost[step]))
            tokens -= step
        return out

    def _reachable(self, tokens: int) -> bool:
        return tokens > self._span or self._step[tokens] is not None

    def _check(self, tokenizer: PromptTokenizer) -> bool:
        rng = random.Random("satscope-tokenizer-check")
        samples = [self.prompt_words(rng, n) for n in _CHECK_LENGTHS]
        counted = tokenizer.count_batch([" ".join(s) for s in samples])
        return all(n == self.cost(s) for n, s in zip(counted, samples, strict=True))
