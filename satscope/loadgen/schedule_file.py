"""Fixed schedule (``--fixed-schedule``): a JSONL dataset whose every line carries its send time.

Each line is one JSON object with ``timestamp`` (ms; relative to the earliest line, divided by
``--speedup``) and what to send, in the ``--dataset-format`` of the file:

- ``sharegpt``: one request, the first human turn of ``conversations`` (the reply's word count its
  ``max_tokens``), or a bare ``prompt`` with an optional ``max_tokens``;
- ``messages`` (``{"messages": [...], "timestamp": MS}``) or ``sharegpt-sessions``: one session
  that starts at that time, its user turns sent with the real history
  (``satscope/loadgen/conversations_file.py``).

A line without a usable timestamp or request is a one-line error naming it: a replay that skipped
lines would be another workload. Pure: the dispatcher sends each line at its time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

from satscope.errors import SatscopeError
from satscope.loadgen.conversations_file import SESSION_FORMATS, Conversation, conversation_of, first_exchange
from satscope.loadgen.timed_jsonl import read_timed_lines

__all__ = ["ScheduledLine", "load_schedule"]

_EXAMPLE = {
    "sharegpt": '{"timestamp": MS, "prompt": "...", "max_tokens": N} or {"timestamp": MS, "conversations": [...]}',
    "messages": '{"timestamp": MS, "messages": [{"role": "user", "content": "..."}]}',
    "sharegpt-sessions": '{"timestamp": MS, "conversations": [{"from": "human", "value": "..."}, ...]}',
}


class ScheduledLine(NamedTuple):
    """One line: seconds after the earliest line (before ``--speedup``), and a request (prompt, answer
    length or None) or a session's conversation."""

    at_s: float
    request: tuple[str, int | None] | None
    conversation: Conversation | None


def load_schedule(path: str | Path, fmt: str) -> list[ScheduledLine]:
    """The lines of ``path`` (format ``fmt``) in time order (a stable sort: ties keep the file's order)."""
    if fmt not in _EXAMPLE:
        raise SatscopeError(f"--fixed-schedule reads {', '.join(_EXAMPLE)} files, not {fmt!r}",
                            "a mooncake trace keeps its schedule without --fixed-schedule")  # fmt: skip
    p = Path(path)
    fix = f"write one JSON object per line: {_EXAMPLE[fmt]}"

    def parse(line: str, number: int) -> tuple[float, tuple[Any, Any]]:
        try:
            entry = json.loads(line)
            at_ms = float(entry["timestamp"])
        except (ValueError, TypeError, KeyError) as exc:
            raise SatscopeError(
                f"dataset {p} line {number} has no timestamp ({type(exc).__name__}: {exc})", fix
            ) from None
        if not (math.isfinite(at_ms) and at_ms >= 0):
            raise SatscopeError(f"dataset {p} line {number}: timestamp {at_ms:g} must be >= 0 ms", fix)
        if fmt in SESSION_FORMATS:
            request, conversation = None, conversation_of(entry, fmt)
            found = conversation is not None
        else:
            request, conversation = _request(entry), None
            found = request is not None
        if not found:
            raise SatscopeError(f"dataset {p} line {number} has nothing to send (or a max_tokens < 1)", fix)
        return at_ms, (request, conversation)

    timed = read_timed_lines(p, "dataset", parse, (f"dataset {p} has no lines", fix))
    return [ScheduledLine(at_s, request, conversation) for at_s, (request, conversation) in timed]


def _request(entry: dict[str, Any]) -> tuple[str, int | None] | None:
    prompt = entry.get("prompt")
    if isinstance(prompt, str) and prompt:
        max_tokens = entry.get("max_tokens")
        if max_tokens is not None and not (type(max_tokens) is int and max_tokens >= 1):
            return None
        return prompt, max_tokens
    return first_exchange(entry)
