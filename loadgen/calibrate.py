"""Calibrate synthetic prompt lengths against the target's own tokenizer.

Synthetic prompts are built from short common words, one token each for the BPE tokenizers we
know; a byte-level tokenizer (the bundled server's random-weight presets) counts ~4 tokens per
word. Before the load starts, two probe requests of different word counts ask the server for
their `usage.prompt_tokens`; the slope is the server's tokens per word, independent of any chat
template, and the workload scales its word counts by it so `--input-len 64` means 64 tokens on
this server. A server that reports no usage keeps 1 token per word, and the run says so. The two
requests carry `X-Satscope-Calibration: 1` and are counted in run.json
(`loadgen.calibration_requests`), so audits of "requests the server counted" can subtract them.
"""

from __future__ import annotations

import random

from loadgen.workload import synthetic_words

__all__ = ["CALIBRATION_REQUESTS", "tokens_per_word"]

_SHORT, _LONG = 16, 80
CALIBRATION_REQUESTS = 2


def _prompt_tokens(url: str, endpoint: str, model: str, api_key: str | None, words: str, timeout_s: float) -> int:
    import httpx

    headers = {"X-Satscope-Calibration": "1"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
    body: dict = {"model": model, "max_tokens": 1, "temperature": 0.0, "stream": False}
    if endpoint == "chat":
        path, body["messages"] = "/v1/chat/completions", [{"role": "user", "content": words}]
    else:
        path, body["prompt"] = "/v1/completions", words
    resp = httpx.post(url.rstrip("/") + path, json=body, headers=headers, timeout=timeout_s)
    resp.raise_for_status()
    return int(resp.json()["usage"]["prompt_tokens"])


def tokens_per_word(
    url: str, endpoint: str, model: str, api_key: str | None, timeout_s: float = 30.0
) -> float | None:
    """The target's prompt tokens per synthetic word, or None when it cannot tell (no usage, errors)."""
    import httpx

    rng = random.Random("satscope-calibration")
    try:
        short = _prompt_tokens(url, endpoint, model, api_key, synthetic_words(rng, _SHORT), timeout_s)
        long = _prompt_tokens(url, endpoint, model, api_key, synthetic_words(rng, _LONG), timeout_s)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    slope = (long - short) / (_LONG - _SHORT)
    return round(slope, 3) if 0.05 <= slope <= 64 else None  # outside: not a tokenizer we can model
