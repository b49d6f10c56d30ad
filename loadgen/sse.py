"""Server-sent-events parsing for OpenAI streaming responses, one raw line at a time.

The LLM user reads a raw line, takes its timestamp, then calls :func:`parse_line`. A line is a
content chunk (a token for the servers we know), a chunk without content (vLLM sends a role-only
chunk first; usage-only chunks come last), ``[DONE]``, blank/comment/field lines to skip, an error
the server put in the stream, or malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["LineKind", "SseEvent", "parse_line", "request_body", "usage_counts"]


class LineKind:
    """What a line of the stream was (plain strings keep records msgpack-friendly)."""

    CONTENT = "content"
    EMPTY = "empty"  # a data chunk without content: role-only, finish-only, usage-only
    DONE = "done"
    SKIP = "skip"  # blank line, comment, event:/id:/retry: field
    ERROR = "error"  # the server reported an error inside the stream
    MALFORMED = "malformed"


@dataclass(slots=True)
class SseEvent:
    kind: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, when reported


_decode = json.JSONDecoder().decode
_SKIP = SseEvent(LineKind.SKIP)
_DONE = SseEvent(LineKind.DONE)
_CONTENT = SseEvent(LineKind.CONTENT)
_EMPTY = SseEvent(LineKind.EMPTY)


def parse_line(line: bytes, chat: bool) -> SseEvent:
    """Classify one raw SSE line (with or without its line ending)."""
    # the hot path first: one call per token at tens of thousands per second
    if not line.startswith(b"data:"):
        line = line.strip()
        if not line or line.startswith((b":", b"event:", b"id:", b"retry:")):
            return _SKIP
        return SseEvent(LineKind.MALFORMED, error=f"not an SSE data line: {line[:80]!r}")
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return _DONE
    try:
        obj = _decode(payload.decode())  # str in: json.loads(bytes) would sniff the encoding each time
    except (ValueError, UnicodeDecodeError):
        return SseEvent(LineKind.MALFORMED, error=f"chunk is not JSON: {payload[:80]!r}")
    if not isinstance(obj, dict):
        return SseEvent(LineKind.MALFORMED, error=f"chunk is not a JSON object: {payload[:80]!r}")
    err = obj.get("error")
    if err is not None:  # `"error": null` is no error
        message = str(err.get("message", err) if isinstance(err, dict) else err)
        return SseEvent(LineKind.ERROR, error=message or "the server reported an error without a message")
    usage = obj.get("usage")
    prompt_tokens = output_tokens = cached_tokens = None
    if isinstance(usage, dict):
        prompt_tokens, output_tokens, cached_tokens = usage_counts(usage)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return SseEvent(LineKind.MALFORMED, error="chunk has no choices list")
    has_content = False
    for choice in choices:
        if not isinstance(choice, dict):
            return SseEvent(LineKind.MALFORMED, error="a choice is not an object")
        if chat:
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                return SseEvent(LineKind.MALFORMED, error="a choice's delta is not an object")
            text = delta.get("content") if delta else None
        else:
            text = choice.get("text")
        if text is not None and not isinstance(text, str):
            return SseEvent(LineKind.MALFORMED, error="a choice's text is not a string")
        if text:
            has_content = True
    if usage is None:
        return _CONTENT if has_content else _EMPTY
    kind = LineKind.CONTENT if has_content else LineKind.EMPTY
    return SseEvent(kind, prompt_tokens, output_tokens, cached_tokens=cached_tokens)


def usage_counts(usage: dict) -> tuple[int | None, int | None, int | None]:
    """``(prompt_tokens, completion_tokens, cached prompt tokens)`` of an OpenAI ``usage`` object;
    the cached count is ``prompt_tokens_details.cached_tokens`` (vLLM, SGLang, llama.cpp)."""
    details = usage.get("prompt_tokens_details")
    cached = _int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
    return _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens")), cached


def request_body(
    *, chat: bool, model: str, prompt: str, max_tokens: int | None, stream: bool, ignore_eos: bool
) -> dict:
    """The JSON body of one OpenAI completions / chat completions request."""
    body: dict = {"model": model, "stream": stream, "temperature": 0.0}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM / satscope extension: generate exactly max_tokens
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
