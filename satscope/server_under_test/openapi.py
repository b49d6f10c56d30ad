"""OpenAPI request and response schemas of the generation routes, for `/openapi.json`.

The routes parse the raw body by hand (protocol.py) so that every refusal is an OpenAI-shaped 400;
FastAPI therefore cannot infer their schemas. These JSON Schemas say what protocol.py accepts,
with this server's own limits (`max_tokens`, vocabulary) filled in, so clients and fuzzers
(schemathesis) see the real contract. Unknown fields are allowed, as OpenAI's API allows them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "generation_route_docs"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_ERRORS = {
    "400": "malformed JSON, a missing or mistyped field, or a prompt that does not fit the context",
    "401": "--api-key is set and the bearer token is missing or wrong",
    "404": "'model' is not the served model",
    "413": "the body is larger than the server's limit",
    "429": "the waiting queue is full; retry after the Retry-After seconds",
}

_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE = {
    "type": "object",
    "required": list(_USAGE_FIELDS),
    "properties": {k: {"type": "integer", "minimum": 0} for k in _USAGE_FIELDS}
    | {
        "prompt_tokens_details": {
            "type": "object",
            "properties": {"cached_tokens": {"type": "integer", "minimum": 0}},
            "description": "cached_tokens: prompt tokens served from the prefix cache",
        }
    },
}


# stream_options is allowed only with stream=true (otherwise a 400 names the field).
_STREAM_OPTIONS_NEED_STREAM = {"stream_options": {"required": ["stream"], "properties": {"stream": {"const": True}}}}


def _sampling_fields(model: str, max_tokens_limit: int) -> dict[str, Any]:
    max_tokens = {"type": "integer", "minimum": 1, "maximum": max_tokens_limit}
    non_empty = {"type": "string", "minLength": 1}
    fields = {
        "model": {"type": "string", "enum": [model], "description": "the served model; any other is a 404"},
        "max_tokens": max_tokens,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": {"type": "integer"},  # any integer; folded modulo 2**64
        "n": {"type": "integer", "minimum": 1, "maximum": 1},
        "stop": {"oneOf": [non_empty, {"type": "array", "items": non_empty, "maxItems": 4}]},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": _nullable({"type": "boolean"})}},
        "ignore_eos": {"type": "boolean"},
    }
    # As in OpenAI's API, null means "the default" for every optional field.
    return {name: _nullable(schema) for name, schema in fields.items()}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _completion_request(model: str, max_tokens_limit: int, vocab_size: int) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": vocab_size - 1}, "minItems": 1}
    return {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {
                "description": "A string or token ids; a list holding one of these is a batch of one.",
                "oneOf": [
                    text,
                    ids,
                    {"type": "array", "items": text, "minItems": 1, "maxItems": 1},
                    {"type": "array", "items": ids, "minItems": 1, "maxItems": 1},
                ],
            },
            **_sampling_fields(model, max_tokens_limit),
        },
        "dependentSchemas": _STREAM_OPTIONS_NEED_STREAM,
    }


def _chat_request(model: str, max_tokens_limit: int) -> dict[str, Any]:
    part = {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    }
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": part}]},
        },
    }
    fields = _sampling_fields(model, max_tokens_limit)
    return {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "messages": {"type": "array", "items": message, "minItems": 1},
            "max_completion_tokens": fields["max_tokens"],
            **fields,
        },
        "dependentSchemas": _STREAM_OPTIONS_NEED_STREAM,
    }


_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "pattern": r"^(\[DONE\]|\{.*\})$", "description": "a JSON chunk"}},
}


def _completion_response(chat: bool) -> dict[str, Any]:
    choice = (
        {"type": "object", "required": ["index", "message", "finish_reason"]}
        if chat
        else {"type": "object", "required": ["index", "text", "finish_reason"]}
    )
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {"choices": {"type": "array", "items": choice}, "usage": _USAGE},
    }


def generation_route_docs(chat: bool, model: str, max_tokens_limit: int, vocab_size: int) -> dict[str, Any]:
    """Keyword arguments for `app.post(...)`: the request body and every response the route gives."""
    body = _chat_request(model, max_tokens_limit) if chat else _completion_request(model, max_tokens_limit, vocab_size)
    error = {"application/json": {"schema": ERROR_SCHEMA}}
    responses: dict[int | str, dict[str, Any]] = {
        "200": {
            "description": "the completion (JSON), or with stream=true server-sent events ending in [DONE]",
            "content": {
                "application/json": {"schema": _completion_response(chat)},
                # Before OpenAPI 3.2 (no itemSchema), an event-stream schema describes each event.
                "text/event-stream": {"schema": _SSE_EVENT},
            },
        },
        **{status: {"description": why, "content": error} for status, why in _ERRORS.items()},
    }
    return {
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}},
        "responses": responses,
    }
