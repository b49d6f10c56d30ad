"""Dozens of concurrent streams over real HTTP are batched together and each gets every token."""

from __future__ import annotations

import asyncio
import json

import httpx

from satscope.server_under_test.server import ServerThread

STREAMS, MAX_TOKENS = 32, 24


async def _one(client: httpx.AsyncClient, i: int) -> list[str]:
    body = {"prompt": f"stream {i}: ", "max_tokens": MAX_TOKENS, "ignore_eos": True, "stream": True, "temperature": 0}
    texts = []
    async with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                texts.append(json.loads(line[6:])["choices"][0]["text"])
    return texts


async def _all(url: str) -> list[list[str]]:
    limits = httpx.Limits(max_connections=STREAMS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(_one(client, i) for i in range(STREAMS)))


def test_dozens_of_concurrent_streams_are_batched(server: ServerThread) -> None:
    before = server.engine.metrics.registry.get_sample_value("satscope_batch_size_count") or 0.0
    results = asyncio.run(_all(server.url))
    assert all(len(texts) == MAX_TOKENS and all(len(t) == 1 for t in texts) for texts in results)
    steps = server.engine.metrics.registry.get_sample_value("satscope_batch_size_count") - before
    # One stream at a time would take STREAMS * MAX_TOKENS steps; batching needs a few times MAX_TOKENS.
    assert steps < STREAMS * MAX_TOKENS / 4
    assert server.engine.block_manager.num_used_blocks == 0
