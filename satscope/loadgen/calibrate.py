"""Calibrate synthetic prompt lengths against the target's own tokenizer and prompt format.

Synthetic prompts are built from short common words: about one token each for the BPE tokenizers
we know, ~4 for a byte-level tokenizer (the bundled server's random-weight presets), and every
server adds a fixed overhead (a BOS token; on chat, the template around the message: ~31 tokens for
llama.cpp's). Before the load, probe requests of :data:`PROBE_WORDS` words (through the run's own
endpoint, so the template is included) ask the server for `usage.prompt_tokens`, and a least-squares
line through the points gives tokens per word (slope) and the overhead (intercept); the workload
sizes its prompts by both, so `--input-len 64` means 64 prompt tokens as the server counts them.
Each probe holds every word of the vocabulary equally often (shuffled blocks), so its count
carries no sampling noise of which words were drawn: random probes put a 5 % error into the
intercept. Two points were not enough either: contextual tokenizers vary by a few per cent
between short prompts.
A probe the server refuses (a prompt longer than its context) ends the series; fewer than three
points, or a server that reports no usage, leave 1 token per word and no overhead, and the run says
so. The probes carry `X-Satscope-Calibration: 1` and are counted in run.json
(`loadgen.calibration_requests`), so audits of "requests the server counted" can subtract them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from satscope.loadgen.workload import VOCABULARY

__all__ = ["PROBE_WORDS", "Calibration", "calibrate"]

PROBE_WORDS = tuple(k * len(VOCABULARY) for k in (1, 2, 3, 4, 6, 8))  # 46 ... 368 words
_MIN_POINTS = 3


@dataclass(slots=True, frozen=True)
class Calibration:
    """The fit: ``tokens = overhead_tokens + tokens_per_word * words`` (None when not measured)."""

    tokens_per_word: float | None
    overhead_tokens: float
    requests: int  # probe requests sent, answered or not
    points: tuple[tuple[int, int], ...]  # (words, prompt tokens)


def _prompt_tokens(
    url: str, endpoint: str, model: str, words: str, timeout_s: float, headers: dict[str, str], extra_body: dict
) -> int:
    import httpx

    body: dict = {"model": model, "max_tokens": 1, "temperature": 0.0, "stream": False, **extra_body}
    if endpoint == "chat":
        path, body["messages"] = "/v1/chat/completions", [{"role": "user", "content": words}]
    else:
        path, body["prompt"] = "/v1/completions", words
    resp = httpx.post(url.rstrip("/") + path, json=body, headers=headers, timeout=timeout_s)
    resp.raise_for_status()
    return int(resp.json()["usage"]["prompt_tokens"])


def calibrate(
    url: str,
    endpoint: str,
    model: str,
    api_key: str | None,
    timeout_s: float = 30.0,
    *,
    extra_headers: dict[str, str] | None = None,
    extra_body: dict | None = None,
) -> Calibration:
    """Probe the target at :data:`PROBE_WORDS` and fit tokens per word and the per-prompt overhead.

    ``extra_headers`` and ``extra_body`` (``--header``, ``--extra-body``) go with every probe, as with
    the load: a vendor field such as a chat-template option changes the prompt's token count."""
    import httpx

    headers = {**(extra_headers or {}), "X-Satscope-Calibration": "1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    rng = random.Random("satscope-calibration")
    points: list[tuple[int, int]] = []
    sent = 0
    for n_words in PROBE_WORDS:
        sent += 1
        try:
            words = _balanced_words(rng, n_words)
            tokens = _prompt_tokens(url, endpoint, model, words, timeout_s, headers, extra_body or {})
            points.append((n_words, tokens))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            break  # past the context, or no usage: fit what there is
    slope, intercept = fit_line(points) if len(points) >= _MIN_POINTS else (None, 0.0)
    if slope is None or not 0.05 <= slope <= 64:  # outside: not a tokenizer we can model
        return Calibration(None, 0.0, sent, tuple(points))
    return Calibration(round(slope, 4), round(intercept, 2), sent, tuple(points))


def _balanced_words(rng: random.Random, n_words: int) -> str:
    """``n_words`` (a multiple of the vocabulary's size) words: each word equally often, shuffled."""
    out: list[str] = []
    while len(out) < n_words:
        block = list(VOCABULARY)
        rng.shuffle(block)
        out.extend(block)
    return " ".join(out[:n_words])


def fit_line(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of y on x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx
