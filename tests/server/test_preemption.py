"""A KV pool too small for the offered load: preemptions happen, every request completes, and the
greedy outputs equal those of each request run alone."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from satscope.server_under_test.config import ServerConfig
from satscope.server_under_test.engine import LLMEngine
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.server import ServerThread

GREEDY = SamplingParams(max_tokens=48, temperature=0.0, ignore_eos=True)


def _prompts(n: int) -> list[list[int]]:
    rng = random.Random(0)
    return [rng.choices(range(32, 127), k=rng.randint(10, 40)) for _ in range(n)]


@pytest.fixture(scope="module")
def engine_alone() -> LLMEngine:
    return LLMEngine(ServerConfig())


def test_engine_preempts_and_outputs_match_alone(engine_alone: LLMEngine) -> None:
    prompts = _prompts(8)
    alone = [engine_alone.generate([p], GREEDY)[0].token_ids for p in prompts]
    # Each request needs up to 6 blocks of 16; eight of them get 14 blocks together.
    small = LLMEngine(ServerConfig(kv_blocks=14))
    together = small.generate(prompts, GREEDY)
    assert small.scheduler.num_preemptions > 0
    exposed = small.metrics.registry.get_sample_value("satscope_num_preemptions_total")
    assert exposed == small.scheduler.num_preemptions
    assert [o.finish_reason for o in together] == ["length"] * 8
    assert [o.token_ids for o in together] == alone
    assert small.block_manager.num_used_blocks == 0


def test_chunked_prefill_under_a_small_token_budget_matches(engine_alone: LLMEngine) -> None:
    prompts = _prompts(4)
    alone = [engine_alone.generate([p], GREEDY)[0].token_ids for p in prompts]
    tight = LLMEngine(ServerConfig(max_batched_tokens=7, kv_blocks=20))
    assert [o.token_ids for o in tight.generate(prompts, GREEDY)] == alone


@pytest.mark.slow
def test_server_preempts_under_load_and_every_request_completes(
    make_server: Callable[..., AbstractContextManager[ServerThread]],
) -> None:
    prompts = ["".join(map(chr, p)) for p in _prompts(8)]
    body = {"max_tokens": 48, "temperature": 0, "ignore_eos": True}
    with make_server(kv_blocks=14) as s:
        alone = [httpx.post(f"{s.url}/v1/completions", json={**body, "prompt": p}, timeout=60).json() for p in prompts]
        assert s.engine.scheduler.num_preemptions == 0
        together: dict[int, dict] = {}

        def call(i: int) -> None:
            together[i] = httpx.post(f"{s.url}/v1/completions", json={**body, "prompt": prompts[i]}, timeout=60).json()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert s.engine.scheduler.num_preemptions > 0
        assert [together[i]["choices"][0]["text"] for i in range(len(prompts))] == [
            a["choices"][0]["text"] for a in alone
        ]
        metrics = httpx.get(f"{s.url}/metrics").text
        assert f"satscope_num_preemptions_total {float(s.engine.scheduler.num_preemptions)}" in metrics
        assert "satscope_kv_cache_used_blocks 0.0" in metrics
