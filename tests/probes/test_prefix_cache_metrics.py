"""Every engine's prefix-cache figures -> `prefix_cache_hit_rate` and cached tokens/s; absent stays
absent; the PromQL says the same; the bundled server's own counters, scraped live."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from satscope.probes import CanonicalMapper, detect_engine, parse_exposition
from satscope.probes._prometheus import promql_for
from tests.helpers import free_port
from tests.probes.conftest import fixture_text

PREFIX_METRICS = {"prefix_cache_hit_rate", "prefix_cache_hit_tokens_per_s", "prefix_cache_query_tokens_per_s"}


def _two_scrapes(engine: str, fixture: str, second_file: str = "2") -> tuple[dict[str, float], dict[str, float]]:
    mapper = CanonicalMapper(engine)
    first = {r.metric: r.value for r in mapper.rows(100.0, parse_exposition(fixture_text(f"{fixture}.1.txt")))}
    text = fixture_text(f"{fixture}.{second_file}.txt")
    second = {r.metric: r.value for r in mapper.rows(102.0, parse_exposition(text))}
    return first, second


@pytest.mark.parametrize(
    ("engine", "fixture", "expected"),
    [
        # 800 of 4,000 queried tokens hit in 2 s.
        (
            "vllm",
            "vllm_apc",
            {
                "prefix_cache_hit_rate": 0.2,
                "prefix_cache_hit_tokens_per_s": 400.0,
                "prefix_cache_query_tokens_per_s": 2000.0,
            },
        ),
        (
            "vllm",
            "vllm_gpu_apc",
            {
                "prefix_cache_hit_rate": 0.2,
                "prefix_cache_hit_tokens_per_s": 400.0,
                "prefix_cache_query_tokens_per_s": 2000.0,
            },
        ),
        # llama.cpp: 1,800 cached + 600 prefilled prompt tokens in 2 s.
        ("llamacpp", "llamacpp_cached", {"prefix_cache_hit_rate": 0.75, "prefix_cache_hit_tokens_per_s": 900.0}),
    ],
)
def test_hit_rate_comes_from_counter_increases_over_the_interval(
    engine: str, fixture: str, expected: dict[str, float]
) -> None:
    assert detect_engine(parse_exposition(fixture_text(f"{fixture}.1.txt")).names()) == engine
    first, second = _two_scrapes(engine, fixture)
    assert not set(first) & PREFIX_METRICS  # no interval yet: a counter ratio is unknown, not the lifetime one
    assert {k: v for k, v in second.items() if k in PREFIX_METRICS} == pytest.approx(expected)


@pytest.mark.parametrize(("engine", "fixture", "rate"), [("vllm", "vllm_v0_apc", 0.25), ("sglang", "sglang_apc", 0.6)])
def test_engines_with_only_a_gauge_pass_it_through(engine: str, fixture: str, rate: float) -> None:
    _, second = _two_scrapes(engine, fixture)
    assert second["prefix_cache_hit_rate"] == pytest.approx(rate)
    assert not set(second) & (PREFIX_METRICS - {"prefix_cache_hit_rate"})


def test_an_interval_without_queries_has_no_hit_rate_and_zero_token_rates() -> None:
    _, second = _two_scrapes("satscope", "satscope_apc")
    assert "prefix_cache_hit_rate" not in second
    assert second["prefix_cache_hit_tokens_per_s"] == 0.0 and second["prefix_cache_query_tokens_per_s"] == 0.0


@pytest.mark.parametrize("fixture", ["vllm", "tgi", "trtllm", "llamacpp"])
def test_engines_without_prefix_cache_figures_leave_them_absent(fixture: str) -> None:
    engine = detect_engine(parse_exposition(fixture_text(f"{fixture}.1.txt")).names())
    assert engine is not None
    _, second = _two_scrapes(engine, fixture, "1" if fixture == "trtllm" else "2")
    assert not set(second) & PREFIX_METRICS


def test_promql_hit_rate_is_a_ratio_of_rates_and_the_gauge_only_a_fallback() -> None:
    v1 = promql_for(
        "vllm",
        {"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_hit_rate"},
        window_s=20,
    )
    assert v1["prefix_cache_hit_rate"] == (
        "sum by (instance) (rate(vllm:prefix_cache_hits_total[20s])) / "
        "(sum by (instance) (rate(vllm:prefix_cache_queries_total[20s])))"
    )
    v0 = promql_for("vllm", {"vllm:gpu_prefix_cache_hit_rate"})
    assert v0["prefix_cache_hit_rate"] == "avg by (instance) (vllm:gpu_prefix_cache_hit_rate)"
    cpp = promql_for("llamacpp", {"llamacpp:prompt_tokens_cached_total", "llamacpp:prompt_tokens_total"}, window_s=10)
    assert cpp["prefix_cache_hit_rate"].endswith(
        "/ (sum by (instance) (rate(llamacpp:prompt_tokens_cached_total[10s])) + "
        "sum by (instance) (rate(llamacpp:prompt_tokens_total[10s])))"
    )
    assert "prefix_cache_hit_rate" not in promql_for("llamacpp", {"llamacpp:prompt_tokens_total"})


def test_live_scrape_of_the_bundled_server_reports_its_hit_rate() -> None:
    from satscope.server_under_test.config import ServerConfig
    from satscope.server_under_test.server import ServerThread

    prefix = "a shared system prompt for every user of this test. " * 4  # 208 bytes: 13 full blocks
    config = ServerConfig(port=free_port(), log_level="warning", kv_blocks=256)
    with ServerThread(config) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        mapper = CanonicalMapper("satscope")
        mapper.rows(time.monotonic(), parse_exposition(client.get("/metrics").text))
        body = {"model": "tiny", "max_tokens": 4, "temperature": 0, "ignore_eos": True}
        usages: list[dict] = []

        def one(i: int) -> None:
            usages.append(client.post("/v1/completions", json=body | {"prompt": prefix + f"user {i}"}).json()["usage"])

        one(0)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        rows = {r.metric: r.value for r in mapper.rows(time.monotonic(), parse_exposition(client.get("/metrics").text))}
    queried = sum(u["prompt_tokens"] for u in usages)
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert usages[0]["prompt_tokens_details"]["cached_tokens"] == 0 and cached >= 4 * 13 * 16
    assert rows["prefix_cache_hit_rate"] == pytest.approx(cached / queried)
    assert rows["prefix_cache_hit_tokens_per_s"] > 0 and rows["prefix_cache_query_tokens_per_s"] > 0
