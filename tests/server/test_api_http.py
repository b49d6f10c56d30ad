"""The HTTP surface with httpx: SSE framing, health, and every refusal (status, OpenAI error shape, message)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from satscope.server_under_test.server import ServerThread


def _sse_events(body: str) -> list[str]:
    assert body.endswith("\n\n")
    events = body.strip("\n").split("\n\n")
    assert all(e.startswith("data: ") for e in events)
    return [e[len("data: ") :] for e in events]


def test_sse_framing_and_done(server: ServerThread) -> None:
    r = httpx.post(
        f"{server.url}/v1/completions",
        timeout=30,
        json={"prompt": "abc", "max_tokens": 5, "temperature": 0, "stream": True, "ignore_eos": True},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 5
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["length"]
    assert len({c["id"] for c in chunks}) == 1


def test_health_reports_model_and_kernels(server: ServerThread) -> None:
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["model"] == "tiny"
    assert body["kernels"] in ("torch", "triton") and body["device"] == "cpu"


def test_prompt_as_token_ids(server: ServerThread) -> None:
    r = httpx.post(
        f"{server.url}/v1/completions", timeout=30, json={"prompt": [72, 105], "max_tokens": 3, "ignore_eos": True}
    )
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 2


def test_any_integer_seed_is_folded_onto_64_bits(server: ServerThread) -> None:
    """OpenAI bounds no seed: a huge or very negative one is taken modulo 2**64, never refused."""

    def text(seed: int) -> str:
        body = {"prompt": "seeded", "max_tokens": 12, "temperature": 1.0, "seed": seed, "ignore_eos": True}
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]

    assert text(2**70 + 5) == text(5)
    assert text(-(2**64) - 9223372036854775808 + 7) == text(2**63 + 7)
    assert text(5) != text(6)  # the seed still matters


def test_stop_string_cuts_the_output(server: ServerThread) -> None:
    base = {"prompt": "stop test", "max_tokens": 40, "temperature": 0, "ignore_eos": True}
    full = httpx.post(f"{server.url}/v1/completions", json=base, timeout=30).json()["choices"][0]["text"]
    stop = full[10:12]
    cut = httpx.post(f"{server.url}/v1/completions", json={**base, "stop": [stop]}, timeout=30).json()
    choice = cut["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["text"] == full[: full.index(stop)]
    streamed = httpx.post(f"{server.url}/v1/completions", json={**base, "stop": stop, "stream": True}, timeout=30)
    parts = [json.loads(e)["choices"][0]["text"] for e in _sse_events(streamed.text)[:-1]]
    assert "".join(parts) == choice["text"]


LONG = "x" * 3000
BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("/v1/completions", b"{not json", 400, "malformed JSON"),
    ("/v1/completions", b"[1, 2]", 400, "must be a JSON object"),
    ("/v1/completions", {"max_tokens": 5}, 400, "'prompt' is required"),
    ("/v1/completions", {"prompt": ""}, 400, "must not be empty"),
    ("/v1/completions", {"prompt": 5}, 400, "'prompt' must be a string"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400, "'prompt' must be a string"),
    ("/v1/completions", {"prompt": [1, 999]}, 400, "token ids must be in"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -3}, 400, "'max_tokens' must be between"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 10**9}, 400, "'max_tokens' must be between"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "10"}, 400, "'max_tokens' must be an integer"),
    ("/v1/completions", {"prompt": "x", "temperature": 3}, 400, "'temperature' must be between"),
    ("/v1/completions", {"prompt": "x", "top_p": "high"}, 400, "'top_p' must be a number"),
    ("/v1/completions", {"prompt": "x", "stream": "yes"}, 400, "'stream' must be true or false"),
    ("/v1/completions", {"prompt": "x", "n": 2}, 400, "only n=1"),
    ("/v1/completions", {"prompt": "x", "stop": [""]}, 400, "'stop' must be"),
    ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400, "only allowed with"),
    ("/v1/completions", {"prompt": LONG}, 400, "the context is 2048"),
    ("/v1/completions", {"prompt": "x" * 2000, "max_tokens": 100}, 400, "more than the context"),
    ("/v1/completions", {"prompt": "x", "model": "llama"}, 404, "'llama' does not exist"),
    (  # a valid max_completion_tokens does not hide a bad max_tokens (schemathesis found it)
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 2, "max_tokens": 0},
        400,
        "'max_tokens' must be between",
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 10**9, "max_tokens": 2},
        400,
        "'max_completion_tokens' must be between",
    ),
    ("/v1/chat/completions", {"messages": []}, 400, "'messages' must be a non-empty list"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "needs a role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 7}]}, 400, "must be a string"),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "only text parts",
    ),
    ("/v1/nothing", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_INPUTS)
def test_bad_input_is_refused_in_openai_shape(
    server: ServerThread, path: str, body: Any, status: int, message: str
) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{server.url}{path}", timeout=30, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_server_survives_the_bad_inputs(server: ServerThread) -> None:
    r = httpx.post(f"{server.url}/v1/completions", json={"prompt": "still alive", "max_tokens": 2}, timeout=30)
    assert r.status_code == 200
    assert server.engine.block_manager.num_used_blocks == 0


def test_oversized_body_is_413(make_server: Callable[..., AbstractContextManager[ServerThread]]) -> None:
    with make_server(max_body_bytes=1000) as s:
        r = httpx.post(f"{s.url}/v1/completions", json={"prompt": "y" * 2000}, timeout=30)
        assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["error"]["message"]

        def chunked() -> Any:  # no Content-Length: the limit still holds while reading
            yield b'{"prompt": "'
            yield b"z" * 2000
            yield b'"}'

        r = httpx.post(f"{s.url}/v1/completions", content=chunked(), timeout=30)
        assert r.status_code == 413


def test_api_key_is_required_on_v1(make_server: Callable[..., AbstractContextManager[ServerThread]]) -> None:
    with make_server(api_key="s3cret") as s:
        body = {"prompt": "x", "max_tokens": 1}
        assert httpx.post(f"{s.url}/v1/completions", json=body).status_code == 401
        wrong = httpx.post(f"{s.url}/v1/completions", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert "s3cret" not in wrong.text
        ok = httpx.post(f"{s.url}/v1/completions", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.status_code == 200
        assert httpx.get(f"{s.url}/health").status_code == 200  # probes need no key


def test_full_queue_is_429_with_retry_after(make_server: Callable[..., AbstractContextManager[ServerThread]]) -> None:
    with make_server(max_num_seqs=1, max_waiting=1, step_delay_ms=20) as s:
        body = {"prompt": "busy", "max_tokens": 40, "ignore_eos": True, "stream": True}
        first_token = threading.Event()
        results: list[int] = []

        def occupy() -> None:
            with httpx.stream("POST", f"{s.url}/v1/completions", json=body, timeout=60) as r:
                for _ in r.iter_lines():
                    first_token.set()
            results.append(r.status_code)

        threads = [threading.Thread(target=occupy) for _ in range(2)]
        threads[0].start()
        assert first_token.wait(30)  # one running
        threads[1].start()
        while s.engine.num_waiting < 1:  # one waiting: the queue is full
            threading.Event().wait(0.01)
        r = httpx.post(f"{s.url}/v1/completions", json={"prompt": "x", "max_tokens": 1}, timeout=30)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        for t in threads:
            t.join(60)
        assert results == [200, 200]
        metrics = httpx.get(f"{s.url}/metrics").text
        assert 'satscope_requests_rejected_total{reason="queue_full"} 1.0' in metrics
