"""A client that goes away mid-request has its sequence aborted and its KV blocks freed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from satscope.server_under_test.server import ServerThread


def _wait_until(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _aborted(s: ServerThread) -> float:
    value = s.engine.metrics.registry.get_sample_value("satscope_requests_total", {"finish_reason": "abort"})
    return value or 0.0


def test_disconnect_mid_stream_frees_kv(make_server: Callable[..., AbstractContextManager[ServerThread]]) -> None:
    with make_server(step_delay_ms=10) as s:
        body = {"prompt": "long story " * 20, "max_tokens": 1500, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", f"{s.url}/v1/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            received = [line for _, line in zip(range(20), lines, strict=False) if line]
            assert len(received) >= 5
            assert s.engine.block_manager.num_used_blocks > 0
        # The connection is closed mid-stream (1500 tokens were asked for).
        _wait_until(lambda: s.engine.block_manager.num_used_blocks == 0)
        _wait_until(lambda: _aborted(s) == 1)
        m = httpx.get(f"{s.url}/metrics").text
        assert "satscope_kv_cache_usage_ratio 0.0" in m
        assert 'satscope_requests_total{finish_reason="abort"} 1.0' in m
        assert "satscope_num_requests_running 0.0" in m


def test_disconnect_while_waiting_non_streaming(
    make_server: Callable[..., AbstractContextManager[ServerThread]],
) -> None:
    with make_server(step_delay_ms=10, max_num_seqs=1) as s:
        body = {"prompt": "hold", "max_tokens": 1500, "ignore_eos": True}

        def call() -> None:
            # The client gives up after a second and closes the connection.
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(f"{s.url}/v1/completions", json=body, timeout=1.0)

        threads = [threading.Thread(target=call) for _ in range(2)]  # one runs, one waits
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        _wait_until(lambda: _aborted(s) == 2, 10)
        _wait_until(lambda: not s.engine.scheduler.has_work and s.engine.block_manager.num_used_blocks == 0)
        ok = httpx.post(f"{s.url}/v1/completions", json={"prompt": "next", "max_tokens": 3}, timeout=30)
        assert ok.status_code == 200
