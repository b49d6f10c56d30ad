"""Conversation files for multi-turn sessions: ShareGPT with all its turns, and OpenAI ``messages`` JSONL.

Each conversation becomes one session (``satscope/loadgen/conversation.py``): its user turns are sent in
order, each with the real history, and the assistant turns of the file are only used for their
length (the word count of the answer after a user turn is that turn's ``max_tokens``); what the
server actually answers replaces them in the history. Leading ``system`` messages open the history.

- ``sharegpt-sessions``: a JSON list or JSONL of ``{"conversations": [{"from": "human"|"gpt"|"system",
  "value": ...}, ...]}`` (``conversation`` and ``role``/``content`` are read too).
- ``messages``: JSONL, one conversation per line: ``[{"role": "user", "content": ...}, ...]`` or
  ``{"messages": [...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from satscope.errors import SatscopeError

__all__ = ["SESSION_FORMATS", "Conversation", "conversation_of", "first_exchange", "load_conversations"]

SESSION_FORMATS = ("sharegpt-sessions", "messages")
_USER = ("human", "user")
_ASSISTANT = ("gpt", "assistant", "chatgpt", "bard", "model")


class Conversation(NamedTuple):
    """One session's script: the system messages that open it, and per user turn (prompt, answer
    length in words in the file or None)."""

    system: tuple[str, ...]
    turns: tuple[tuple[str, int | None], ...]


def load_conversations(path: str | Path, fmt: str) -> list[Conversation]:
    """The conversations of ``path`` in format ``fmt`` (one of :data:`SESSION_FORMATS`) that have a user turn."""
    if fmt not in SESSION_FORMATS:
        raise SatscopeError(f"conversation format {fmt!r} unknown", f"use one of {SESSION_FORMATS}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SatscopeError(f"cannot read dataset {p}: {exc}", "check the --dataset path") from exc
    hint = "one JSON list of messages per line" if fmt == "messages" else "ShareGPT JSON or JSONL"
    try:
        if fmt == "sharegpt-sessions" and text.lstrip().startswith("["):
            entries = json.loads(text)
        else:
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise SatscopeError(f"dataset {p} is not {hint}: {exc}", f"write {hint}") from exc
    out = [c for c in (conversation_of(entry, fmt) for entry in entries) if c is not None]
    if not out:
        example = '[{"role": "user", "content": "..."}]' if fmt == "messages" else '{"conversations": [...]}'
        raise SatscopeError(f"dataset {p} has no conversation with a user turn", f"write {hint}, e.g. {example}")
    return out


def conversation_of(entry: Any, fmt: str) -> Conversation | None:
    """One entry of a conversation file (a line, or an item of a JSON list) as a session; None
    when it has no user turn."""
    if fmt == "messages":
        turns = entry.get("messages") if isinstance(entry, dict) else entry
    else:
        turns = (entry.get("conversations") or entry.get("conversation")) if isinstance(entry, dict) else None
    return _conversation(turns) if isinstance(turns, list) else None


def first_exchange(entry: Any) -> tuple[str, int | None] | None:
    """A ShareGPT entry's first human turn and the word count of the reply after it (None: no
    reply); None when it has no human turn."""
    turns = (entry.get("conversations") or entry.get("conversation")) if isinstance(entry, dict) else None
    if not isinstance(turns, list):
        return None
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return None
        if _role(turn) in _USER:
            reply = turns[i + 1] if i + 1 < len(turns) else None
            reply_len = len(_content(reply).split()) if isinstance(reply, dict) else 0
            prompt = _content(turn)
            return (prompt, reply_len or None) if prompt else None
    return None


def _conversation(messages: list[Any]) -> Conversation | None:
    system: list[str] = []
    turns: list[tuple[str, int | None]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return None
        role, content = _role(message), _content(message)
        if role == "system" and not turns:
            system.append(content)
        elif role in _USER and content:
            reply = messages[i + 1] if i + 1 < len(messages) else None
            answered = isinstance(reply, dict) and _role(reply) in _ASSISTANT
            words = len(_content(reply).split()) if answered and isinstance(reply, dict) else 0
            turns.append((content, words or None))
    return Conversation(tuple(system), tuple(turns)) if turns else None


def _role(message: dict[str, Any]) -> str:
    return str(message.get("from", message.get("role", "")))


def _content(message: dict[str, Any]) -> str:
    value = message.get("value", message.get("content", ""))
    return value if isinstance(value, str) else ""
