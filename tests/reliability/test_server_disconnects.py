"""A thousand clients drop their connections mid-request: the server frees every KV block and serves on.

Raw asyncio sockets against a real `satscope serve` subprocess on loopback, so the clients really
close TCP connections (no client library retries or pools). Three ways of leaving, mixed: after the
first streamed token, right after sending the request (still queued), and a non-streamed request
abandoned while it waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest

from tests.helpers import bundled_server
from tests.reliability._scrape import counter_sum, scrape, wait_idle

CLIENTS = 1000
PARALLEL = 250  # sockets open at once: enough to fill the batch and the queue, well under ulimit


def _request(port: int, body: dict[str, object]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _one_client(port: int, i: int, gate: asyncio.Semaphore) -> str:
    """Open, ask for a long completion, leave early; which way depends on i. Returns what happened."""
    streaming = i % 3 != 2
    body = {"prompt": f"client {i} says", "max_tokens": 400, "ignore_eos": True, "stream": streaming}
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_request(port, body))
            await writer.drain()
            if i % 3 == 0:  # read until the first token, then hang up mid-stream
                got = await asyncio.wait_for(reader.readuntil(b"data: "), 60)
                return "mid_stream" if b" 200 " in got.split(b"\r\n", 1)[0] else "refused"
            await asyncio.sleep(0.05)  # hang up while queued or generating, before any token is read
            return "early"
        finally:
            writer.transport.abort()  # an RST-like close: no polite shutdown


async def _stampede(port: int) -> Counter[str]:
    gate = asyncio.Semaphore(PARALLEL)
    results = await asyncio.gather(*(_one_client(port, i, gate) for i in range(CLIENTS)), return_exceptions=True)
    return Counter(r if isinstance(r, str) else type(r).__name__ for r in results)


@pytest.mark.slow
def test_a_thousand_disconnects_free_every_kv_block_and_the_server_serves_on() -> None:
    flags = ("--max-waiting", "2000", "--max-num-seqs", "64", "--log-level", "warning")
    with bundled_server(*flags) as server:
        started = time.monotonic()
        outcomes = asyncio.run(asyncio.wait_for(_stampede(server.port), 150))
        assert sum(outcomes.values()) == CLIENTS
        assert outcomes["mid_stream"] == len(range(0, CLIENTS, 3)), outcomes  # every one got a token first

        h = wait_idle(server.url, 60)
        assert h["kv_cache_usage"] == 0.0 and h["num_requests_running"] == 0 and h["num_requests_waiting"] == 0, h
        samples = scrape(server.url)
        assert counter_sum(samples, "satscope_kv_cache_used_blocks") == 0
        aborted = counter_sum(samples, "satscope_requests_total", finish_reason="abort")
        finished = counter_sum(samples, "satscope_requests_total")
        assert counter_sum(samples, "satscope_requests_total", finish_reason="error") == 0
        # 400-token answers cannot finish in the time a client stays: every admitted request was aborted.
        assert aborted >= outcomes["mid_stream"] and finished == aborted, (aborted, finished)
        assert finished <= CLIENTS

        ok = httpx.post(f"{server.url}/v1/completions", json={"prompt": "still there?", "max_tokens": 4}, timeout=30)
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] >= 1
        print(f"\n{CLIENTS} disconnects ({dict(outcomes)}), {aborted:.0f} aborted, {time.monotonic() - started:.1f} s")
