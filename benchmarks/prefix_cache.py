"""Prefix caching on the `tiny` preset: TTFT and prefill with caching on vs off, and the hit rate
as the KV pool shrinks.

In-process engine (no HTTP). Part 1: N users (1, 8, 32) arrive at once, each with the same
1,024-token system prompt and a question of their own; with caching on, the system prompt was seen
once before (as in steady serving). Reports mean and p90 TTFT, the prompt tokens actually
prefilled, and effective prompt tokens/s (all prompt tokens, cached ones included, over the time to
the last first token). Part 2: 4 system prompts of 1,024 tokens, 64 requests in waves of 8,
round-robin over the prompts, on pools from roomy to tight: the hit rate falls once the pool cannot
keep every prompt's blocks while serving the wave.

    .venv/bin/python benchmarks/prefix_cache.py [--users 1,8,32] [--pools 1024,512,320,200,136]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from satscope.server_under_test import LLMEngine, SamplingParams, ServerConfig

PARAMS = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
SYSTEM_TOKENS = 1024


def _system_prompt(seed: int) -> list[int]:
    return random.Random(seed).choices(range(32, 127), k=SYSTEM_TOKENS)


def _question(rng: random.Random) -> list[int]:
    return rng.choices(range(32, 127), k=32)


def _run(engine: LLMEngine, prompts: list[list[int]]) -> tuple[list[float], float, int]:
    """Submit all at once; TTFTs, time to the last first token, prompt tokens prefilled."""
    first: dict[str, float] = {}
    before = engine.metrics.registry.get_sample_value("satscope_prompt_tokens_total") or 0.0
    t0 = time.monotonic()
    for i, p in enumerate(prompts):
        engine.add_request(
            f"r{time.monotonic_ns()}-{i}", p, PARAMS, lambda o: first.setdefault(o.request_id, time.monotonic())
        )
    while engine.has_unfinished:
        engine.step()
    ttfts = sorted(t - t0 for t in first.values())
    prefilled = (engine.metrics.registry.get_sample_value("satscope_prompt_tokens_total") or 0.0) - before
    return ttfts, ttfts[-1], int(prefilled)


def part1(users: list[int]) -> None:
    system = _system_prompt(0)
    rng = random.Random(1)
    print("| users | caching | TTFT mean s | TTFT p90 s | prompt tokens prefilled | effective prompt tokens/s |")
    print("|---|---|---|---|---|---|")
    for n in users:
        for caching in (False, True):
            engine = LLMEngine(ServerConfig(enable_prefix_caching=caching, kv_blocks=4096))
            engine.generate([system + _question(rng)], PARAMS)  # warm-up: the system prompt seen once
            prompts = [system + _question(rng) for _ in range(n)]
            ttfts, last, prefilled = _run(engine, prompts)
            p90 = ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))]
            total = sum(len(p) for p in prompts)
            print(
                f"| {n} | {'on' if caching else 'off'} | {statistics.mean(ttfts):.3f} | {p90:.3f} | "
                f"{prefilled} | {total / last:,.0f} |"
            )


def part2(pools: list[int]) -> None:
    systems = [_system_prompt(s) for s in range(4)]
    print("\n| KV pool (blocks) | pool / 4 prompts' blocks | hit rate | evictions | preemptions | wall s |")
    print("|---|---|---|---|---|---|")
    for blocks in pools:
        rng = random.Random(2)
        engine = LLMEngine(ServerConfig(kv_blocks=blocks))
        t0 = time.monotonic()
        for wave in range(8):
            _run(engine, [systems[(wave * 8 + i) % 4] + _question(rng) for i in range(8)])
        s, bm = engine.scheduler, engine.block_manager
        print(
            f"| {blocks} | {blocks / (4 * SYSTEM_TOKENS / 16):.2f} | {s.prefix_hits / s.prefix_queries:.1%} | "
            f"{bm.num_evictions} | {s.num_preemptions} | {time.monotonic() - t0:.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", default="1,8,32")
    ap.add_argument("--pools", default="1024,512,320,200,136")
    args = ap.parse_args()
    part1([int(x) for x in args.users.split(",")])
    part2([int(x) for x in args.pools.split(",")])


if __name__ == "__main__":
    main()
