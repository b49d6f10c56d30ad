"""Server-sent-events parsing for OpenAI streaming responses, one raw line at a time.

The LLM user reads a raw line, takes its timestamp, then calls :func:`parse_line`. A line is a
token chunk, a chunk without tokens (vLLM sends a role-only chunk first; usage-only chunks come
last), ``[DONE]``, blank/comment/field lines to skip, an error the server put in the stream, or
malformed.

A token chunk carries output of one or more kinds, each counted as one token (one chunk is one
token for the servers we know): *reasoning* (``delta.reasoning_content`` from vLLM and SGLang,
``delta.reasoning`` from OpenRouter and newer vLLM; one kind, even when a server sends both
fields), *content* (``delta.content`` on chat, ``text`` on completions) and *tool calls* (a
non-empty ``delta.tool_calls[i].function.name`` or ``.arguments``). Content and tool calls are
the *visible* output: what a user of the answer sees, and what TTFO times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["LineKind", "SseEvent", "Usage", "answer_text", "chunk_text", "parse_line", "request_body", "usage_counts"]


class LineKind:
    """What a line of the stream was (plain strings keep records msgpack-friendly)."""

    CONTENT = "content"  # a token chunk: reasoning, content or tool-call output (see SseEvent's parts)
    EMPTY = "empty"  # a data chunk without output: role-only, finish-only, usage-only, empty strings
    DONE = "done"
    SKIP = "skip"  # blank line, comment, event:/id:/retry: field
    ERROR = "error"  # the server reported an error inside the stream
    MALFORMED = "malformed"


class Usage(NamedTuple):
    """The counts of an OpenAI ``usage`` object that a request record keeps (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # prompt_tokens_details.cached_tokens
    reasoning_tokens: int | None = None  # completion_tokens_details.reasoning_tokens


@dataclass(slots=True)
class SseEvent:
    """One classified line. A ``CONTENT`` event has ``reasoning_parts`` (0 or 1) and
    ``visible_parts`` (0 to 2: content, tool calls), at least one part in all."""

    kind: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, when reported
    reasoning_parts: int = 0
    visible_parts: int = 0
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens, when reported


_decode = json.JSONDecoder().decode
_SKIP = SseEvent(LineKind.SKIP)
_DONE = SseEvent(LineKind.DONE)
_CONTENT = SseEvent(LineKind.CONTENT, visible_parts=1)
_REASONING = SseEvent(LineKind.CONTENT, reasoning_parts=1)
_EMPTY = SseEvent(LineKind.EMPTY)


class _Malformed(Exception):
    """A field the parser reads has the wrong type (the message says which)."""


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
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return SseEvent(LineKind.MALFORMED, error="chunk has no choices list")
    content = reasoning = tools = False
    try:
        for choice in choices:
            if not isinstance(choice, dict):
                raise _Malformed("a choice is not an object")
            if not chat:
                content = _has_text(choice.get("text"), "text") or content
                continue
            delta = choice.get("delta")
            if delta is None:
                continue
            if not isinstance(delta, dict):
                raise _Malformed("a choice's delta is not an object")
            content = _has_text(delta.get("content"), "content") or content
            first, second = delta.get("reasoning_content"), delta.get("reasoning")
            if first is not None or second is not None:  # one part even when a server fills both names
                reasoning = _has_text(first, "reasoning_content") | _has_text(second, "reasoning") or reasoning
            calls = delta.get("tool_calls")
            if calls is not None:
                tools = _has_tool_output(calls) or tools
    except _Malformed as exc:
        return SseEvent(LineKind.MALFORMED, error=str(exc))
    visible = content + tools
    if usage is None:  # every chunk but the last: the shared events, no allocation
        if not reasoning:
            return _EMPTY if not visible else _CONTENT if visible == 1 else SseEvent(LineKind.CONTENT, visible_parts=2)
        if not visible:
            return _REASONING
    kind = LineKind.CONTENT if reasoning or visible else LineKind.EMPTY
    event = SseEvent(kind, reasoning_parts=int(reasoning), visible_parts=int(visible))
    if isinstance(usage, dict):
        u = usage_counts(usage)
        event.prompt_tokens, event.output_tokens = u.prompt_tokens, u.completion_tokens
        event.cached_tokens, event.reasoning_tokens = u.cached_tokens, u.reasoning_tokens
    return event


def _has_text(value: object, name: str) -> bool:
    """Whether a text field holds output: a non-empty string (null and "" do not); any other type is malformed."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    raise _Malformed(f"a choice's {name} is not a string")


def _has_tool_output(calls: object) -> bool:
    """Whether ``delta.tool_calls`` carries output: a function's name or a piece of its arguments."""
    if not isinstance(calls, list):
        raise _Malformed("a choice's tool_calls is not a list")
    found = False
    for call in calls:
        if not isinstance(call, dict):
            raise _Malformed("a tool call is not an object")
        function = call.get("function")
        if function is None:
            continue
        if not isinstance(function, dict):
            raise _Malformed("a tool call's function is not an object")
        name = _has_text(function.get("name"), "tool call's name")
        arguments = _has_text(function.get("arguments"), "tool call's arguments")
        found = found or name or arguments
    return found


def chunk_text(line: bytes, chat: bool) -> str:
    """The visible text of a token chunk (``delta.content``, completions ``text``) of a line that
    :func:`parse_line` classified as content: what a session's next turn carries as the answer.
    Parsed a second time, and only for sessions, so the timing path of other requests is unchanged."""
    choices = _decode(line[5:].strip().decode()).get("choices") or []
    if chat:
        return "".join(c["delta"].get("content") or "" for c in choices if isinstance(c.get("delta"), dict))
    return "".join(c.get("text") or "" for c in choices)


def answer_text(body: object, chat: bool) -> str:
    """The answer of a whole (non-streamed) response object: ``message.content`` or ``text``; "" if none."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    value = (choices[0].get("message") or {}).get("content") if chat else choices[0].get("text")
    return value if isinstance(value, str) else ""


def usage_counts(usage: dict) -> Usage:
    """The counts of an OpenAI ``usage`` object: ``prompt_tokens``, ``completion_tokens`` (reasoning
    included), ``prompt_tokens_details.cached_tokens`` (vLLM, SGLang, llama.cpp) and
    ``completion_tokens_details.reasoning_tokens`` (OpenAI and the servers that copy it)."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Usage(
        _int_or_none(usage.get("prompt_tokens")),
        _int_or_none(usage.get("completion_tokens")),
        _int_or_none(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None,
        _int_or_none(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else None,
    )


def request_body(
    *,
    chat: bool,
    model: str,
    prompt: str,
    max_tokens: int | None,
    stream: bool,
    ignore_eos: bool,
    extra: dict | None = None,
    messages: list[dict[str, str]] | None = None,
) -> dict:
    """The JSON body of one OpenAI completions / chat completions request. ``extra`` (``--extra-body``,
    checked to hold none of the keys set here but ``temperature``) is merged in last, at the top level.
    ``messages`` (chat: a session's history and its next turn) replaces the single user ``prompt``."""
    body: dict = {"model": model, "stream": stream, "temperature": 0.0}
    if chat:
        body["messages"] = messages if messages is not None else [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM / satscope extension: generate exactly max_tokens
    if stream:
        body["stream_options"] = {"include_usage": True}
    if extra:
        body.update(extra)
    return body


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
