"""OpenAI response bodies and stream chunks for completions and chat completions."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["final_body", "sse", "stream_chunk", "usage", "usage_chunk"]


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage object; `cached_tokens` are the prompt tokens served from the prefix cache."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def _envelope(rid: str, chat: bool, chunk: bool, created: int, model: str) -> dict[str, Any]:
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if chat else "text_completion"
    return {"id": rid, "object": kind, "created": created, "model": model}


def stream_chunk(
    rid: str,
    chat: bool,
    created: int,
    model: str,
    text: str | None,
    finish_reason: str | None,
    include_usage: bool,
    first: bool = False,
) -> dict[str, Any]:
    """One streamed delta. Chat's first chunk carries the role."""
    body = _envelope(rid, chat, True, created, model)
    if chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
        if text:
            delta["content"] = text
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
    body["choices"] = [choice]
    if include_usage:
        body["usage"] = None
    return body


def usage_chunk(
    rid: str, chat: bool, created: int, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> dict[str, Any]:
    """The extra last chunk of `stream_options.include_usage`: no choices, the usage."""
    body = _envelope(rid, chat, True, created, model)
    body["choices"] = []
    body["usage"] = usage(prompt_tokens, completion_tokens, cached_tokens)
    return body


def final_body(
    rid: str,
    chat: bool,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    body = _envelope(rid, chat, False, created, model)
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    body["choices"] = [choice]
    body["usage"] = usage(prompt_tokens, completion_tokens, cached_tokens)
    return body
