"""Preflight: one real request of the run's endpoint and model before any load is sent.

`satscope run` would otherwise load-test anything that answers HTTP: a static file server, a base
URL ending in ``/v1``, a wrong ``--model``, a server that wants a key. The preflight lists the
target's models, then sends one short request exactly as the load will (the same body builder and,
for a stream, the same SSE line parser, ``satscope/loadgen/sse.py``, which imports neither locust nor gevent)
and raises :class:`PreflightError` with the fix when the answer is not what the load needs.
The request carries ``X-Satscope-Preflight: 1`` so that audits of what the server counted can
leave it out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from satscope._tls import tls_context
from satscope.errors import SatscopeError

__all__ = ["PREFLIGHT_HEADER", "PreflightError", "PreflightResult", "preflight", "preflight_check"]

PREFLIGHT_HEADER = "X-Satscope-Preflight"
_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
_MAX_BYTES = 1 << 20  # a 4-token answer is a few kB; past this the target is not what we think
_PROMPT = "Say hello."


class PreflightError(SatscopeError):
    """The target cannot take this run's load as configured."""


@dataclass(slots=True, frozen=True)
class PreflightResult:
    """What the preflight learnt: the model to send and the target's model list (may be empty)."""

    model: str
    listed_models: tuple[str, ...]
    chunks: int  # content chunks of the streamed answer (0 when not streamed)


def _root_without_v1(url: str) -> str | None:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        return None
    return urlunsplit((parts.scheme, parts.netloc, path[: -len("/v1")], "", "")).rstrip("/")


def _error_text(body: bytes) -> str:
    """The server's error message from an OpenAI-style error body, else the body's start."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:160]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)[:160]
        if isinstance(err, str):
            return err[:160]
        if isinstance(obj.get("message"), str):
            return obj["message"][:160]
    return " ".join(text.split())[:160]


def _auth_error(url: str, status: int, api_key: str | None, message: str) -> PreflightError:
    if api_key:
        return PreflightError(f"target {url} refused the key given with --api-key (HTTP {status}: {message})",
                              "pass the key the server expects with --api-key or SATSCOPE_API_KEY")
    return PreflightError(f"target {url} needs an API key (HTTP {status}: {message})",
                          "pass it with --api-key KEY or SATSCOPE_API_KEY")


def _list_models(client: Any, url: str, api_key: str | None) -> tuple[str, ...]:
    """Ids at /v1/models; empty when the target does not list them (many test servers do not)."""
    import httpx

    try:
        resp = client.get(url + "/v1/models")
    except httpx.HTTPError:
        return ()
    if resp.status_code in (401, 403):
        raise _auth_error(url, resp.status_code, api_key, _error_text(resp.content))
    if resp.status_code != 200:
        return ()
    try:
        data = resp.json().get("data") or []
        return tuple(str(m["id"]) for m in data if isinstance(m, dict) and "id" in m)
    except (ValueError, AttributeError, TypeError):
        return ()


def _mentions_model(message: str) -> bool:
    lowered = message.lower()
    return "model" in lowered and any(w in lowered for w in ("not found", "does not exist", "unknown", "not_found",
                                                             "invalid", "no such", "not served"))


def _http_failure(url: str, path: str, status: int, message: str, model: str, models: tuple[str, ...],
                  api_key: str | None, extra_flags: str = "") -> PreflightError:
    if status in (401, 403):
        return _auth_error(url, status, api_key, message)
    if status in (400, 404, 422) and _mentions_model(message):
        served = f"it serves: {', '.join(models)}" if models else "see the target's /v1/models"
        fix = f"use --model {models[0]}" if models else "pass a model the target serves with --model"
        return PreflightError(f"target {url} does not serve model {model!r} ({message}; {served})", fix)
    if status == 404:
        root = _root_without_v1(url)
        if root is not None:
            return PreflightError(f"target {url} answered HTTP 404 for {urlsplit(url).path.rstrip('/')}{path}",
                                  f"drop /v1 from the URL: --target {root}")
        return PreflightError(f"target {url} has no {path} (HTTP 404): not an OpenAI-compatible server",
                              "point --target at the server's base URL (without /v1), or fix --endpoint")
    if status in (405, 501):
        return PreflightError(f"target {url} does not accept POST {path} (HTTP {status}): "
                              "not an OpenAI-compatible server", "point --target at an OpenAI-compatible server")
    return PreflightError(f"target {url} answered HTTP {status} to a test request of POST {path}: {message}",
                          f"fix the server, or the request flags (--endpoint, --model, --no-ignore-eos{extra_flags})")


def _check_stream(resp: Any, url: str, path: str, chat: bool, timeout_s: float) -> int:
    """Read the streamed answer line by line as the load does; the number of content chunks."""
    from satscope.loadgen.sse import LineKind, parse_line

    not_stream = f"target {url} answered POST {path} with something that is not an OpenAI-compatible stream"
    fix = "point --target at an OpenAI-compatible server, or add --no-stream if it cannot stream"
    chunks, done, size = 0, False, 0
    deadline = time.monotonic() + timeout_s
    for line in resp.iter_lines():
        size += len(line)
        if time.monotonic() > deadline:
            raise PreflightError(f"target {url} did not finish a 4-token test stream within {timeout_s:g} s",
                                 "check the server is up and not overloaded, or raise --timeout")
        if size > _MAX_BYTES:
            raise PreflightError(f"{not_stream} (more than {_MAX_BYTES} bytes for a 4-token answer)", fix)
        event = parse_line(line.encode(), chat)
        if event.kind == LineKind.CONTENT:
            chunks += 1
        elif event.kind == LineKind.DONE:
            done = True
            break
        elif event.kind == LineKind.ERROR:
            raise PreflightError(f"target {url} reported an error in the stream of a test request: {event.error}",
                                 "fix the server, or the request flags (--endpoint, --model)")
        elif event.kind == LineKind.MALFORMED:
            raise PreflightError(f"{not_stream} ({event.error})", fix)
    if not done:
        raise PreflightError(f"{not_stream} (the stream ended without data: [DONE] after {chunks} chunks)", fix)
    return chunks


def _check_whole(body: bytes, url: str, path: str) -> None:
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        raise PreflightError(
            f"target {url} answered POST {path} with something that is not an OpenAI-compatible completion "
            f"({_error_text(body)[:80]!r})",
            "point --target at an OpenAI-compatible server",
        )


def preflight(
    url: str,
    endpoint: str,
    model: str,
    api_key: str | None,
    *,
    stream: bool = True,
    ignore_eos: bool = True,
    timeout_s: float = 60.0,
    extra_headers: dict[str, str] | None = None,
    extra_body: dict | None = None,
) -> PreflightResult:
    """List the target's models and send one short request as the load will; PreflightError if unfit.

    ``model`` of ``""`` takes the first model the target lists (``default`` if it lists none).
    ``extra_headers`` and ``extra_body`` (``--header``, ``--extra-body``) go as with the load.
    """
    import httpx

    from satscope.loadgen.sse import request_body

    url = url.rstrip("/")
    path = _PATHS[endpoint]
    chat = endpoint == "chat"
    headers = {**(extra_headers or {}), PREFLIGHT_HEADER: "1", "Accept-Encoding": "identity"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    with httpx.Client(headers=headers, timeout=timeout, verify=tls_context()) as client:
        models = _list_models(client, url, api_key)
        if model and models and model not in models:
            raise PreflightError(f"target {url} does not serve model {model!r} (it serves: {', '.join(models)})",
                                 f"use --model {models[0]}")
        chosen = model or (models[0] if models else "default")
        body = request_body(chat=chat, model=chosen, prompt=_PROMPT, max_tokens=4, stream=stream,
                            ignore_eos=ignore_eos, extra=extra_body)
        # a target that refuses a field of --extra-body: the fix names that flag too
        extra_flags = ", --extra-body" if extra_body else ""
        chunks = 0
        try:
            with client.stream("POST", url + path, json=body) as resp:
                if resp.status_code != 200:
                    message = _error_text(resp.read()[:_MAX_BYTES]) or f"HTTP {resp.status_code}"
                    raise _http_failure(url, path, resp.status_code, message, chosen, models, api_key, extra_flags)
                if stream:
                    chunks = _check_stream(resp, url, path, chat, timeout_s)
                else:
                    _check_whole(resp.read()[:_MAX_BYTES], url, path)
        except httpx.TimeoutException:
            raise PreflightError(f"target {url} did not answer a 4-token test request within {timeout_s:g} s",
                                 "check the server is up and not overloaded, or raise --timeout") from None
        except httpx.HTTPError as exc:
            raise PreflightError(f"target {url} failed a test request of POST {path} ({type(exc).__name__}: {exc})",
                                 "check --target and that the server is up") from None
    return PreflightResult(chosen, models, chunks)


def preflight_check(
    endpoint: str,
    api_key: str | None,
    stream: bool,
    ignore_eos: bool,
    timeout_s: float,
    extra_headers: dict[str, str] | None = None,
    extra_body: dict | None = None,
) -> Callable[[str, str], str]:
    """The preflight as `satscope run`'s orchestrator calls it: (url, model) -> the model to send."""

    def check(url: str, model: str) -> str:
        return preflight(url, endpoint, model, api_key, stream=stream, ignore_eos=ignore_eos,
                         timeout_s=min(timeout_s, 60.0), extra_headers=extra_headers, extra_body=extra_body).model

    return check

