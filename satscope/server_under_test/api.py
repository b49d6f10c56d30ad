"""The OpenAI-compatible HTTP API (FastAPI): completions, chat completions, models, health, metrics.

Requests are checked here (auth, body size, JSON, fields, model, context) before the engine sees
them; a full waiting queue is a 429 with Retry-After. `/openapi.json` publishes the request schemas
(openapi.py) even though the bodies are parsed by hand. Each request gets an asyncio queue that the
engine thread feeds through `call_soon_threadsafe`. A client that goes away mid-request has its
sequence aborted, which frees its KV blocks. Prompt text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from satscope.server_under_test.engine import LLMEngine, PromptTooLongError, QueueFullError, RequestOutput
from satscope.server_under_test.openapi import generation_route_docs
from satscope.server_under_test.protocol import ApiError, GenerationRequest, error_body, parse_chat, parse_completion
from satscope.server_under_test.responses import final_body, sse, stream_chunk, usage_chunk
from satscope.server_under_test.tokenizer import ChatTemplateError

__all__ = ["build_app"]

log = logging.getLogger("satscope.server")

_REJECT_REASONS = {400: "bad_request", 404: "bad_request", 401: "unauthorized", 413: "too_large", 429: "queue_full"}


def build_app(engine: LLMEngine) -> FastAPI:
    """The app; its lifespan starts the engine thread and, on shutdown, drains and stops it."""
    config = engine.config
    model_name = config.model_name
    max_tokens_limit = min(config.max_tokens_limit or engine.max_model_len, engine.max_model_len)
    vocab_size = engine.model_config.vocab_size

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)

    app = FastAPI(title="satscope reference server", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status in _REJECT_REASONS:
            engine.metrics.rejected.labels(reason=_REJECT_REASONS[exc.status]).inc()
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return JSONResponse(error_body(exc.status, exc.message, exc.param, exc.code), exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: the traceback goes to the log (Starlette re-raises), the client gets JSON.
        return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}"), 500)

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), config.api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise ApiError(413, f"request body larger than {config.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise ApiError(413, f"request body larger than {config.max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks), parse_constant=_reject_constant)
        except RecursionError:
            raise ApiError(400, "malformed JSON body: nested too deeply") from None
        except ValueError as exc:  # bad JSON or UTF-8, NaN/Infinity, an integer of thousands of digits
            raise ApiError(400, f"malformed JSON body: {exc}") from None

    def submit(req: GenerationRequest, chat: bool, rid: str, arrival: float) -> asyncio.Queue[RequestOutput]:
        if req.model is not None and req.model != model_name:
            raise ApiError(
                404,
                f"the model '{req.model}' does not exist; this server serves '{model_name}'",
                "model",
                "model_not_found",
            )
        ids = req.prompt_token_ids
        if ids is None:
            text = req.prompt_text or ""
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": JSON allows it, UTF-8 not
                raise ApiError(400, "the prompt is not valid Unicode (a lone surrogate)", _text_param(chat)) from None
            ids = engine.tokenizer.encode(text)
        elif any(not 0 <= t < vocab_size for t in ids):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab_size})", "prompt")
        room = engine.max_model_len - len(ids)
        if room < 1:
            raise ApiError(
                400,
                f"the prompt is {len(ids)} tokens; the context is {engine.max_model_len}",
                "prompt",
                "context_length_exceeded",
            )
        max_tokens = req.max_tokens if req.max_tokens is not None else min(room, max_tokens_limit)
        params = dataclasses.replace(req.params, max_tokens=max_tokens)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[RequestOutput] = asyncio.Queue()
        try:
            engine.add_request(
                rid, ids, params, lambda out: loop.call_soon_threadsafe(queue.put_nowait, out), arrival_time=arrival
            )
        except PromptTooLongError as exc:
            raise ApiError(400, str(exc), "max_tokens", "context_length_exceeded") from None
        except QueueFullError as exc:
            raise ApiError(429, f"{exc}; retry later", code="queue_full") from None
        log.debug("request %s: %d prompt tokens, max_tokens %d", rid, len(ids), max_tokens)
        return queue

    async def stream(
        rid: str, chat: bool, req: GenerationRequest, queue: asyncio.Queue[RequestOutput]
    ) -> AsyncIterator[str]:
        finished = False
        try:
            if chat:
                yield sse(stream_chunk(rid, True, req.created, model_name, None, None, req.include_usage, True))
            while not finished:
                out = await queue.get()
                finished = out.finished
                if out.text or finished:
                    yield sse(
                        stream_chunk(rid, chat, req.created, model_name, out.text, out.finish_reason, req.include_usage)
                    )
            if req.include_usage:
                yield sse(
                    usage_chunk(
                        rid, chat, req.created, model_name, out.prompt_tokens, out.completion_tokens, out.cached_tokens
                    )
                )
            yield sse("[DONE]")
        finally:
            if not finished:
                engine.abort(rid)

    async def collect(
        rid: str, request: Request, queue: asyncio.Queue[RequestOutput]
    ) -> tuple[str, RequestOutput] | None:
        """The whole output, or None when the client went away (the sequence is then aborted)."""
        parts = []
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    engine.abort(rid)
                    return None
                out = get.result()
                parts.append(out.text)
                if out.finished:
                    return "".join(parts), out
        finally:
            gone.cancel()

    async def generate(request: Request, req: GenerationRequest, chat: bool, rid: str, arrival: float) -> Response:
        queue = submit(req, chat, rid, arrival)
        if req.stream:
            return StreamingResponse(
                stream(rid, chat, req, queue), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        collected = await collect(rid, request, queue)
        if collected is None:
            return Response(status_code=499)  # nobody is listening; nginx's "client closed request"
        text, out = collected
        if out.finish_reason == "error":
            return JSONResponse(error_body(500, "the engine failed while generating"), 500)
        return JSONResponse(
            final_body(
                rid,
                chat,
                req.created,
                model_name,
                text,
                out.finish_reason,
                out.prompt_tokens,
                out.completion_tokens,
                out.cached_tokens,
            )
        )

    @app.post("/v1/completions", **generation_route_docs(False, model_name, max_tokens_limit, vocab_size))
    async def completions(request: Request) -> Response:
        arrival = time.monotonic()
        authorize(request)
        req = parse_completion(await read_json(request), max_tokens_limit)
        return await generate(request, req, False, f"cmpl-{uuid.uuid4().hex}", arrival)

    @app.post("/v1/chat/completions", **generation_route_docs(True, model_name, max_tokens_limit, vocab_size))
    async def chat_completions(request: Request) -> Response:
        arrival = time.monotonic()
        authorize(request)
        req, messages = parse_chat(await read_json(request), max_tokens_limit)
        try:
            req.prompt_token_ids = engine.tokenizer.chat_token_ids(messages)
        except ChatTemplateError as exc:
            raise ApiError(400, str(exc), "messages") from None
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": JSON allows it, UTF-8 not
            raise ApiError(400, "the messages are not valid Unicode (a lone surrogate)", "messages") from None
        return await generate(request, req, True, f"chatcmpl-{uuid.uuid4().hex}", arrival)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {
            "object": "list",
            "data": [
                {
                    "id": model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "satscope",
                    "max_model_len": engine.max_model_len,
                }
            ],
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        f = engine.facts
        return {
            "status": "ok",
            "model": model_name,
            "kernels": f.kernels,
            "device": f.device,
            "dtype": f.dtype,
            "kv_cache_usage": engine.block_manager.usage,
            "num_requests_running": len(engine.scheduler.running),
            "num_requests_waiting": engine.num_waiting,
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _text_param(chat: bool) -> str:
    return "messages" if chat else "prompt"


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so only that message is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
