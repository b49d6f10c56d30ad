"""Fixtures: the deterministic streaming server and `satscope run` as real subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeServer:
    url: str
    proc: subprocess.Popen

    def records(self) -> dict:
        return httpx.get(f"{self.url}/_records", timeout=10).json()


@contextlib.contextmanager
def fake_server(
    mode: str = "normal",
    ttft: float = 0.03,
    itl: float = 0.01,
    close_after_response: float | None = None,
    prefix_cache: bool = False,
    args: tuple[str, ...] = (),
) -> Iterator[FakeServer]:
    """The fake server on a free port; ``args``: more of its flags (``--record-requests``, ...)."""
    port = free_port()
    extra = [] if close_after_response is None else ["--close-after-response", str(close_after_response)]
    extra += ["--prefix-cache"] if prefix_cache else []
    extra += list(args)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_llm_server",
            "--port",
            str(port),
            "--ttft",
            str(ttft),
            "--itl",
            str(itl),
            "--mode",
            mode,
            *extra,
        ],
        cwd=ROOT,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 20, proc)
        yield FakeServer(f"http://127.0.0.1:{port}", proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., FakeServer]]:
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(fake_server(**kw))


def satscope_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--no-report", *args]


def run_satscope(*args: str, timeout: float = 90, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        satscope_cmd(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
