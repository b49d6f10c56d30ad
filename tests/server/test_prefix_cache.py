"""Automatic prefix caching: block naming, LRU eviction, exact accounting, and greedy outputs equal
with caching on and off, under preemption and over HTTP with concurrent streams."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from satscope.server_under_test.block_manager import BlockManager
from satscope.server_under_test.config import ServerConfig
from satscope.server_under_test.engine import LLMEngine
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.sequence import Sequence
from satscope.server_under_test.server import ServerThread

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
BS = 16


def _seq(tokens: list[int], rid: str = "r") -> Sequence:
    return Sequence(rid, tokens, GREEDY)


def _compute_all(bm: BlockManager, seq: Sequence) -> int:
    cached = bm.allocate_prefix(seq, 10_000)
    seq.num_computed_tokens = seq.num_tokens
    bm.cache_full_blocks(seq)
    return cached


def test_full_blocks_are_shared_partial_blocks_never_and_one_token_is_left_to_compute() -> None:
    bm = BlockManager(num_blocks=16, block_size=4, enable_prefix_caching=True)
    a = _seq(list(range(10)))  # two full blocks and a partial one
    assert _compute_all(bm, a) == 0
    assert bm.num_cached_blocks == 2
    b = _seq([*range(10), 99])
    assert _compute_all(bm, b) == 8
    assert b.block_table[:2] == a.block_table[:2] and b.block_table[2] != a.block_table[2]
    assert [bm.ref_count(x) for x in a.block_table] == [2, 2, 1]
    exact = _seq(list(range(8)))  # a prompt of exactly two full blocks: the last one is recomputed
    assert _compute_all(bm, exact) == 4
    other = _seq([7, *range(1, 10)])  # differs in the first token: the chain breaks at once
    assert _compute_all(bm, other) == 0


def test_freed_cached_blocks_are_free_and_evicted_lru_only_when_needed() -> None:
    bm = BlockManager(num_blocks=6, block_size=4, enable_prefix_caching=True)
    a = _seq(list(range(9)))
    _compute_all(bm, a)
    bm.release(a)
    assert bm.num_used_blocks == 0 and bm.usage == 0.0
    assert bm.num_cached_blocks == 2 and bm.num_cached_free_blocks == 2
    taken = bm.allocate(4)  # the four never-cached free blocks (the partial one too) go first
    assert bm.num_evictions == 0 and bm.num_cached_blocks == 2
    taken += bm.allocate(1)  # now one cached block must go: the deepest one (released first)
    assert bm.num_evictions == 1 and bm.num_cached_blocks == 1
    bm.free(taken)
    again = _seq(list(range(9)))
    assert _compute_all(bm, again) == 4  # only the first block survived
    assert bm.num_used_blocks == 3 and bm.num_cached_blocks == 2


def test_admission_that_does_not_fit_takes_nothing() -> None:
    bm = BlockManager(num_blocks=3, block_size=4, enable_prefix_caching=True)
    a = _seq(list(range(9)))
    _compute_all(bm, a)
    bm.release(a)
    b = _seq(list(range(8)) + list(range(50, 62)))  # 2 cached blocks + 3 new needed, 1 left
    assert bm.allocate_prefix(b, 10_000) == -1
    assert b.block_table == [] and bm.num_used_blocks == 0 and bm.num_cached_free_blocks == 2


def test_caching_off_never_hits() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a, b = _seq(list(range(9))), _seq(list(range(9)))
    _compute_all(bm, a)
    assert _compute_all(bm, b) == 0 and bm.num_cached_blocks == 0


def _shared_prefix_prompts(n: int, prefix_len: int = 80) -> list[list[int]]:
    rng = random.Random(1)
    prefix = rng.choices(range(32, 127), k=prefix_len)
    return [prefix + rng.choices(range(32, 127), k=rng.randint(1, 30)) for _ in range(n)]


@pytest.mark.parametrize("kv_blocks", [None, 14])
def test_greedy_outputs_equal_with_caching_on_and_off(kv_blocks: int | None) -> None:
    prompts = _shared_prefix_prompts(8)
    off = LLMEngine(ServerConfig(kv_blocks=kv_blocks, enable_prefix_caching=False))
    on = LLMEngine(ServerConfig(kv_blocks=kv_blocks))
    first = on.generate(prompts[:1], GREEDY)  # warm the cache with the shared prefix
    expected = off.generate(prompts, GREEDY)
    got = on.generate(prompts, GREEDY)
    assert [o.token_ids for o in got] == [o.token_ids for o in expected]
    assert first[0].cached_tokens == 0
    assert all(o.cached_tokens == 0 for o in expected)
    reg = on.metrics.registry
    queries = reg.get_sample_value("satscope_prefix_cache_queries_total")
    hits = reg.get_sample_value("satscope_prefix_cache_hits_total")
    assert queries == on.scheduler.prefix_queries and hits == on.scheduler.prefix_hits > 0
    assert off.metrics.registry.get_sample_value("satscope_prefix_cache_hits_total") == 0
    if kv_blocks is None:
        # The warm prompt itself hits all its full blocks; the others the 5 blocks of the shared prefix.
        assert got[0].cached_tokens == (len(prompts[0]) - 1) // BS * BS
        assert [o.cached_tokens for o in got[1:]] == [80] * 7
    else:
        assert on.scheduler.num_preemptions > 0  # the small pool preempts and evicts, outputs still equal
        assert reg.get_sample_value("satscope_prefix_cache_evictions_total") > 0
    # Nothing is left in use once all finished; cached blocks are all free and evictable.
    assert on.block_manager.num_used_blocks == 0
    assert on.block_manager.num_cached_free_blocks == on.block_manager.num_cached_blocks


def test_abort_keeps_the_accounting_exact() -> None:
    eng = LLMEngine(ServerConfig())
    prompts = _shared_prefix_prompts(3)
    eng.generate(prompts[:1], GREEDY)
    for i, p in enumerate(prompts):
        eng.add_request(f"a{i}", p, GREEDY)
    eng.step()
    eng.step()
    for i in range(len(prompts)):
        eng.abort(f"a{i}")
    eng.step()
    bm = eng.block_manager
    assert bm.num_used_blocks == 0 and all(bm.ref_count(b) == 0 for b in range(bm.num_blocks))
    assert bm.num_free_blocks == bm.num_blocks


def _chat(client: httpx.Client, prompt: str, stream: bool) -> tuple[str, dict]:
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 16, "temperature": 0, "ignore_eos": True}
    if not stream:
        data = client.post("/v1/completions", json=body).json()
        return data["choices"][0]["text"], data["usage"]
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    text, usage = [], {}
    with client.stream("POST", "/v1/completions", json=body) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                text += [c["text"] for c in chunk["choices"]]
                usage = chunk.get("usage") or usage
    return "".join(text), usage


def test_http_concurrent_streams_match_caching_off_and_report_cached_tokens(
    make_server: Callable[..., AbstractContextManager[ServerThread]],
) -> None:
    prefix = "You are a terse assistant. Answer in one line. " * 3  # 141 bytes (byte-level tokenizer)
    prompts = [prefix + f"question {i}?" for i in range(6)]
    results: dict[str, dict[int, tuple[str, dict]]] = {}
    for caching in (False, True):
        with (
            make_server(enable_prefix_caching=caching, kv_blocks=40) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            _, warm = _chat(client, prefix + "warm up", False)
            bos = warm["prompt_tokens"] - len(prefix + "warm up")
            out: dict[int, tuple[str, dict]] = {}

            def one(i: int, client: httpx.Client = client, out: dict = out) -> None:
                out[i] = _chat(client, prompts[i], stream=i % 2 == 0)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            metrics = client.get("/metrics").text
        results[str(caching)] = out
        hits_line = next(ln for ln in metrics.splitlines() if ln.startswith("satscope_prefix_cache_hits_total"))
        assert (float(hits_line.split()[-1]) > 0) is caching
    for i in range(len(prompts)):
        assert results["True"][i][0] == results["False"][i][0]
        assert results["False"][i][1]["prompt_tokens_details"]["cached_tokens"] == 0
        cached = results["True"][i][1]["prompt_tokens_details"]["cached_tokens"]
        # Every full block of the shared prefix; more when an earlier question shared "question ".
        assert cached % BS == 0 and cached >= (bos + len(prefix)) // BS * BS


def test_readmissions_after_preemption_are_not_counted_as_prefix_reuse() -> None:
    """As vLLM's counters: a preempted sequence re-admitted finds its own blocks again, which is no
    reuse. Distinct prompts on a small pool: preemptions happen, hits stay 0, and the queries are
    exactly the prompts' tokens at their first admission."""
    rng = random.Random(7)
    prompts = [rng.choices(range(32, 127), k=40) for _ in range(8)]
    eng = LLMEngine(ServerConfig(kv_blocks=14))
    eng.generate(prompts, SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True))
    assert eng.scheduler.num_preemptions > 0
    reg = eng.metrics.registry
    assert reg.get_sample_value("satscope_prefix_cache_hits_total") == 0
    assert reg.get_sample_value("satscope_prefix_cache_queries_total") == sum(len(p) for p in prompts)
