"""The bundled server's limits and security: loopback by default, a constant-time key check, a clear
error for each limit, hostile JSON refused (never a 5xx), and no prompt text in its log.

Limits already covered in tests/server (429 on a full queue, 413 while streaming a body, 401
without a key) are not repeated here.
"""

from __future__ import annotations

import hmac
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from satscope.server_under_test.config import ServerConfig
from satscope.server_under_test.server import ServerThread
from tests.helpers import ServerProcess, bundled_server, free_port, wait_http_ok

MARKER = "SECRET-PROMPT-5d1e"

LIMIT_FLAGS = ("--max-model-len", "64", "--max-tokens-limit", "8", "--max-body-bytes", "8192")


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    """A server with small limits, logging at the default level (info)."""
    with bundled_server(*LIMIT_FLAGS) as s:
        yield s


# (body, status, param, words the message must contain)
LIMITS: list[tuple[Any, int, str | None, str]] = [
    ({"prompt": MARKER, "max_tokens": 9}, 400, "max_tokens", "between 1 and 8"),
    ({"prompt": MARKER, "max_tokens": 0}, 400, "max_tokens", "between 1 and 8"),
    ({"prompt": MARKER, "n": 2}, 400, "n", "n=1"),
    ({"prompt": MARKER * 5, "max_tokens": 1}, 400, "prompt", "the context is 64"),  # 90 tokens
    ({"prompt": MARKER + "y" * 42, "max_tokens": 8}, 400, "max_tokens", "is 68 tokens, more than the context of 64"),
    ({"prompt": MARKER + "x" * 9000}, 413, None, "larger than 8192 bytes"),
    ({"prompt": [1, 2, 999]}, 400, "prompt", "token ids must be in [0, 258)"),
    ({"prompt": MARKER, "model": "gpt-9"}, 404, "model", "does not exist"),
]

HOSTILE: list[tuple[bytes, str]] = [
    (b'{"prompt": "\\ud800' + MARKER.encode() + b'", "max_tokens": 2}', "lone surrogate"),
    (b'{"prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}", "malformed JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "larger than 8192 bytes"),  # refused before parsing
    (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
    (b'{"prompt": "x", "temperature": NaN}', "NaN is not valid JSON"),
    (b'{"prompt": "x", "top_p": Infinity}', "Infinity is not valid JSON"),
    (b'{"prompt": "x", "temperature": 1e400}', "between 0.0 and 2.0"),
    (b"\xff\xfe\x00", "malformed JSON"),
    (b'{"prompt": {"nested": "dict"}}', "'prompt' must be a string"),
    (b'{"prompt": "x", "stop": [""]}', "'stop' must be"),
]


@pytest.mark.parametrize(("body", "status", "param", "words"), LIMITS)
def test_each_limit_is_a_clear_openai_error(
    limited: ServerProcess, body: dict[str, Any], status: int, param: str | None, words: str
) -> None:
    r = httpx.post(f"{limited.url}/v1/completions", json=body, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and words in error["message"], error


@pytest.mark.parametrize(("raw", "words"), HOSTILE)
def test_hostile_json_is_a_400_or_413_never_a_5xx(limited: ServerProcess, raw: bytes, words: str) -> None:
    headers = {"content-type": "application/json"}
    for route in ("/v1/completions", "/v1/chat/completions"):
        r = httpx.post(f"{limited.url}{route}", content=raw, headers=headers, timeout=30)
        assert r.status_code in (400, 413), (route, r.status_code, r.text[:300])
        if route.endswith("/completions") and "chat" not in route:
            assert words in r.json()["error"]["message"], r.text[:300]


def test_a_lone_surrogate_in_a_chat_message_is_a_400(limited: ServerProcess) -> None:
    raw = b'{"messages": [{"role": "user", "content": "\\udfff"}], "max_tokens": 2}'
    r = httpx.post(f"{limited.url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_integral_floats_count_as_integers_and_null_means_the_default(limited: ServerProcess) -> None:
    """JSON Schema's rule, which the published schema follows: 2.0 is an integer, 2.5 is not."""
    ok = httpx.post(
        f"{limited.url}/v1/completions", json={"prompt": [72.0, 105], "max_tokens": 2.0, "n": None, "ignore_eos": True}
    )
    assert ok.status_code == 200 and ok.json()["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 2,
        "total_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    bad = httpx.post(f"{limited.url}/v1/completions", json={"prompt": "x", "max_tokens": 2.5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_tokens"


def test_prompt_text_never_reaches_the_log(limited: ServerProcess) -> None:
    """Runs after the other tests on `limited` (module order; it stops that server): they all sent MARKER."""
    ok = httpx.post(f"{limited.url}/v1/completions", json={"prompt": MARKER, "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200
    limited.proc.send_signal(signal.SIGTERM)
    assert limited.proc.wait(timeout=30) == 0
    log = limited.log()
    assert "Application startup complete" in log  # the log is there, at info level
    assert MARKER not in log and "5d1e" not in log


def test_binds_loopback_unless_told_otherwise() -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "satscope", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 120, proc)
        listening = [
            c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" and addr.port == port for addr in listening), listening
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert ServerConfig().host == "127.0.0.1"


def test_api_key_is_checked_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key check goes through hmac.compare_digest, whatever the length or prefix of the guess."""
    real = hmac.compare_digest
    seen: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    key = "k3y-" + "x" * 28
    guesses = ["k", key[:-1], key + "y", "X" * len(key), key.upper(), "k3y-~~~"]
    with ServerThread(ServerConfig(port=free_port(), api_key=key, log_level="warning")) as s:
        for guess in guesses:
            auth = {"Authorization": f"Bearer {guess}"}
            r = httpx.post(f"{s.url}/v1/completions", json={"prompt": "x"}, headers=auth)
            assert r.status_code == 401 and key not in r.text
        r = httpx.get(f"{s.url}/v1/models", headers={"Authorization": f"bearer {key}"})
        assert r.status_code == 200  # the scheme is case-insensitive, the key is not
    assert [a for a, _ in seen] == [g.encode() for g in guesses] + [key.encode()]
    assert all(b == key.encode() for _, b in seen)
