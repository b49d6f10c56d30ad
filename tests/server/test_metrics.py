"""/metrics parsed with prometheus-client's own parser; the gauges move as load comes and goes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from satscope.server_under_test.server import ServerThread

DOCUMENTED = {
    "satscope_num_requests_running",
    "satscope_num_requests_waiting",
    "satscope_kv_cache_usage_ratio",
    "satscope_kv_cache_capacity_blocks",
    "satscope_kv_cache_capacity_tokens",
    "satscope_kv_cache_used_blocks",
    "satscope_num_preemptions",
    "satscope_prefix_cache_blocks",
    "satscope_prefix_cache_free_blocks",
    "satscope_prefix_cache_queries",
    "satscope_prefix_cache_hits",
    "satscope_prefix_cache_evictions",
    "satscope_prompt_tokens",
    "satscope_generation_tokens",
    "satscope_requests",
    "satscope_requests_rejected",
    "satscope_batch_size",
    "satscope_step_duration_seconds",
    "satscope_time_to_first_token_seconds",
    "satscope_inter_token_latency_seconds",
    "satscope_e2e_request_latency_seconds",
    "satscope_request_queue_time_seconds",
    "satscope_model_info",
    "satscope_model_parameters",
    "satscope_model_weight_bytes",
    "satscope_model_layers",
    "satscope_model_kv_bytes_per_token",
    "satscope_model_flops_per_token",
}


def scrape(url: str) -> dict[str, float]:
    """Every sample as 'name{label="v",...}' → value."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_every_documented_family_is_exposed(server: ServerThread) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name for f in text_string_to_metric_families(text)}
    assert families == DOCUMENTED
    m = scrape(server.url)
    assert m["satscope_kv_cache_capacity_blocks"] == 1024
    assert m["satscope_kv_cache_capacity_tokens"] == 1024 * 16
    assert m['satscope_model_info{device="cpu",dtype="float32",kernels="torch",model="tiny"}'] == 1
    assert m["satscope_model_layers"] == 4
    assert 2e6 < m["satscope_model_parameters"] < 5e6
    assert m["satscope_model_weight_bytes"] == 4 * m["satscope_model_parameters"]
    assert m["satscope_model_kv_bytes_per_token"] == 2 * 4 * 2 * 32 * 4


def test_gauges_move_under_load_and_return(make_server: Callable[..., AbstractContextManager[ServerThread]]) -> None:
    with make_server(kv_blocks=64, step_delay_ms=10) as s:
        n, max_tokens = 6, 60
        done: list[int] = []

        def request(i: int) -> None:
            r = httpx.post(
                f"{s.url}/v1/completions",
                timeout=60,
                json={"prompt": f"load {i} " * 5, "max_tokens": max_tokens, "ignore_eos": True},
            )
            done.append(r.status_code)

        threads = [threading.Thread(target=request, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        peak_running, peak_usage = 0.0, 0.0
        deadline = time.monotonic() + 60
        while len(done) < n and time.monotonic() < deadline:
            m = scrape(s.url)
            peak_running = max(peak_running, m["satscope_num_requests_running"])
            peak_usage = max(peak_usage, m["satscope_kv_cache_usage_ratio"])
            time.sleep(0.05)
        for t in threads:
            t.join(60)
        assert done == [200] * n
        assert peak_running >= 2 and peak_usage > 0.1
        after = scrape(s.url)
        assert after["satscope_num_requests_running"] == 0
        assert after["satscope_num_requests_waiting"] == 0
        assert after["satscope_kv_cache_usage_ratio"] == 0 and after["satscope_kv_cache_used_blocks"] == 0
        assert after["satscope_generation_tokens_total"] == n * max_tokens
        assert after['satscope_requests_total{finish_reason="length"}'] == n
        assert after["satscope_time_to_first_token_seconds_count"] == n
        assert after["satscope_e2e_request_latency_seconds_count"] == n
        assert after["satscope_inter_token_latency_seconds_count"] == n * (max_tokens - 1)
        assert after["satscope_batch_size_sum"] >= n * max_tokens  # every sampled token was in some step
