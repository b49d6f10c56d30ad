"""The token audit: does the server's count of a streamed request's output agree with the client's?

The server's ``usage.completion_tokens`` counts every token it generated, reasoning included, so it
is compared with every token part the client counted (``output_chunks``: reasoning, content and
tool-call output; ``satscope/loadgen/sse.py``), like with like. Two cases need more than equality:

- **Swallowed think delimiters.** The reasoning parsers of vLLM and SGLang send no chunk for a
  step whose only token is ``<think>`` or ``</think>``, yet the usage counts it; a stream that
  carried reasoning may therefore come up to :data:`THINK_DELIMITER_TOKENS` short of the usage.
- **Hidden reasoning.** A server that thinks without streaming it (OpenAI's o-series) counts the
  thinking in ``completion_tokens`` and says how much in ``completion_tokens_details.
  reasoning_tokens``; when no reasoning part was streamed, the visible parts are compared with
  ``completion_tokens - reasoning_tokens``.

Tool calls are audited like the rest: a server whose tool parser sends a call's arguments in
pieces of several tokens shows as a mismatch, rightly so, since its chunks are not tokens there.
"""

from __future__ import annotations

from typing import Any

__all__ = ["THINK_DELIMITER_TOKENS", "token_mismatch"]

THINK_DELIMITER_TOKENS = 2  # <think> and </think>: counted by the server, sent as no chunk


def token_mismatch(
    streamed: Any, output_tokens: Any, output_chunks: Any, reasoning_chunks: Any, reasoning_tokens: Any
) -> Any:
    """Per request (numpy arrays; -1 where usage did not say): whether the usage disagrees with the
    parts counted. Only streamed requests with a reported ``completion_tokens`` are audited."""
    import numpy as np

    out = np.asarray(output_tokens, dtype=np.int64)
    chunks = np.asarray(output_chunks, dtype=np.int64)
    reasoned = np.asarray(reasoning_chunks, dtype=np.int64) > 0
    reasoning = np.asarray(reasoning_tokens, dtype=np.int64)
    hidden = ~reasoned & (reasoning > 0)
    missing = np.where(hidden, out - reasoning, out) - chunks  # tokens the server counted and the client did not
    swallowed = reasoned & (missing > 0) & (missing <= THINK_DELIMITER_TOKENS)
    return np.asarray(streamed, dtype=bool) & (out >= 0) & (missing != 0) & ~swallowed
