"""Parse and check OpenAI-style request bodies; shape responses, stream chunks and errors.

Parsing is by hand rather than through pydantic models so that every refusal is a 400 in
OpenAI's error shape with a message that names the field, whatever was wrong with the body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from satscope.server_under_test.sampling_params import SEED_RANGE, SamplingParams

__all__ = ["ApiError", "GenerationRequest", "error_body", "parse_chat", "parse_completion"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


@dataclass(slots=True)
class GenerationRequest:
    """A completion or chat request, reduced to what the engine needs."""

    model: str | None
    prompt_text: str | None
    prompt_token_ids: list[int] | None
    max_tokens: int | None  # None: up to the context length
    params: SamplingParams  # max_tokens filled in once the prompt length is known
    stream: bool
    include_usage: bool
    created: int


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"'{name}' must be a number", name)
    if not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be between {lo} and {hi}, got {value}", name)
    return float(value)


def _integral(value: Any) -> int | None:
    """``value`` as an int if it is one; JSON (and JSON Schema) count 2.0 as the integer 2."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    number = _integral(value)
    if number is None:
        raise ApiError(400, f"'{name}' must be an integer", name)
    return number


def _max_tokens(body: dict[str, Any], name: str, limit: int) -> int | None:
    value = _optional_int(body, name)
    if value is not None and not 1 <= value <= limit:
        raise ApiError(400, f"'{name}' must be between 1 and {limit}, got {value}", name)
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be true or false", name)
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise ApiError(400, "'stop' must be a non-empty string or a list of up to 4 non-empty strings", "stop")
    return tuple(stop)


def _common(body: Any, max_tokens_limit: int) -> tuple[str | None, int | None, SamplingParams, bool, bool]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", "model")
    n = _optional_int(body, "n")
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", "n")
    # Both fields are checked when both are sent (a bad one is refused, not shadowed by the other);
    # max_completion_tokens, OpenAI's newer name, wins.
    limits = [_max_tokens(body, name, max_tokens_limit) for name in ("max_completion_tokens", "max_tokens")]
    max_tokens = next((value for value in limits if value is not None), None)
    seed = _optional_int(body, "seed")
    if seed is not None:  # any JSON integer: folded onto the generator's 64 bits, as a C uint64 cast would
        seed %= SEED_RANGE[1] + 1
    params = SamplingParams(
        max_tokens=max_tokens or 1,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        # top_p 0 asks for the single most likely token; SamplingParams wants a positive mass.
        top_p=max(_number(body, "top_p", 1.0, 0.0, 1.0), 1e-9),
        seed=seed,
        ignore_eos=_bool(body, "ignore_eos"),
        stop=_stop(body),
    )
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options")
    include_usage = (options or {}).get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise ApiError(400, "'stream_options.include_usage' must be true or false", "stream_options")
    include_usage = bool(include_usage)
    if include_usage and not stream:
        raise ApiError(400, "'stream_options' is only allowed with stream=true", "stream_options")
    return model, max_tokens, params, stream, include_usage


def parse_completion(body: Any, max_tokens_limit: int) -> GenerationRequest:
    model, max_tokens, params, stream, include_usage = _common(body, max_tokens_limit)
    if max_tokens is None:
        max_tokens = min(16, max_tokens_limit)  # OpenAI's default for completions (chat: up to the context)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    text, ids = None, None
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and all(_integral(t) is not None for t in prompt):
        ids = [_integral(t) for t in prompt]
    elif prompt is None:
        raise ApiError(400, "'prompt' is required", "prompt")
    else:
        raise ApiError(400, "'prompt' must be a string or a list of token ids (one prompt per request)", "prompt")
    if not (text or ids):
        raise ApiError(400, "'prompt' must not be empty", "prompt")
    return GenerationRequest(model, text, ids, max_tokens, params, stream, include_usage, int(time.time()))


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{index}].content: only text parts are supported", "messages")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"messages[{index}].content must be a string or a list of text parts", "messages")


def parse_chat(body: Any, max_tokens_limit: int) -> tuple[GenerationRequest, list[dict[str, str]]]:
    model, max_tokens, params, stream, include_usage = _common(body, max_tokens_limit)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", "messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise ApiError(400, f"messages[{i}] needs a role of system, user, assistant, developer or tool", "messages")
        clean.append({"role": m["role"], "content": _message_text(m.get("content", ""), i)})
    request = GenerationRequest(model, None, None, max_tokens, params, stream, include_usage, int(time.time()))
    return request, clean
