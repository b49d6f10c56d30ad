"""Each engine's exposition (fixtures written from its documented names) -> the canonical set."""

from __future__ import annotations

import pytest

from satscope.probes import CanonicalMapper, detect_engine, parse_exposition
from satscope.probes._model_info import model_description
from tests.probes.conftest import fixture_text

# Second scrape, 2 s after the first: every gauge, rate and histogram mean the engine has, and
# nothing else (a metric the engine lacks must be absent, not zero).
EXPECTED = {
    "satscope": {
        "kv_cache_usage": 0.875, "requests_running": 6, "requests_waiting": 3,
        "preemptions_per_s": 2.0, "preemptions_total": 5.0, "prompt_tokens_per_s": 500.0,
        "generation_tokens_per_s": 300.0, "batch_size": 6.0, "ttft_mean_s": 0.3, "itl_mean_s": 0.02,
        "e2e_mean_s": 3.0, "queue_time_mean_s": 0.3,
    },
    "vllm": {
        "kv_cache_usage": 0.75, "requests_running": 8, "requests_waiting": 5,
        "preemptions_per_s": 2.0, "preemptions_total": 7.0, "prompt_tokens_per_s": 1000.0,
        "generation_tokens_per_s": 2000.0, "ttft_mean_s": 0.3, "itl_mean_s": 0.02, "e2e_mean_s": 3.0,
        "queue_time_mean_s": 0.2,
    },
    "vllm_v0": {
        "kv_cache_usage": 0.625, "requests_running": 3, "requests_waiting": 0,
        "generation_tokens_per_s": 100.0, "itl_mean_s": 0.03,
    },
    "sglang": {
        "kv_cache_usage": 0.5, "requests_running": 170, "requests_waiting": 2800,
        "prompt_tokens_per_s": 1000.0, "generation_tokens_per_s": 2500.0, "ttft_mean_s": 0.5,
        "itl_mean_s": 0.01, "e2e_mean_s": 10.0, "prefix_cache_hit_rate": 0.007507552643049313,
    },
    "tgi": {
        "requests_running": 4, "requests_waiting": 0, "prompt_tokens_per_s": 2000.0,
        "generation_tokens_per_s": 1000.0, "itl_mean_s": 0.03, "e2e_mean_s": 4.0, "queue_time_mean_s": 0.5,
    },
    "llamacpp": {
        "kv_cache_usage": 0.25, "requests_running": 4, "requests_waiting": 0,
        "prompt_tokens_per_s": 500.0, "generation_tokens_per_s": 100.0,
    },
}
ENGINE_OF = {"vllm_v0": "vllm"}
GAUGES = {"kv_cache_usage", "requests_running", "requests_waiting", "prefix_cache_hit_rate"}


def _scrape(mapper: CanonicalMapper, t: float, fixture: str) -> dict[str, float]:
    rows = mapper.rows(t, parse_exposition(fixture_text(fixture)))
    assert all(r.source == "server" and r.t == t and r.labels == {} for r in rows)
    values = {r.metric: r.value for r in rows}
    assert len(values) == len(rows), "one row per canonical metric"
    return values


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_two_scrapes_map_onto_the_canonical_set(fixture: str) -> None:
    engine = ENGINE_OF.get(fixture, fixture)
    assert detect_engine(parse_exposition(fixture_text(f"{fixture}.1.txt")).names()) == engine
    mapper = CanonicalMapper(engine)
    first = _scrape(mapper, 100.0, f"{fixture}.1.txt")
    # The first scrape has no interval: only gauges (and a counter's running total) are known.
    assert set(first) <= GAUGES | {"preemptions_total"}
    second = _scrape(mapper, 102.0, f"{fixture}.2.txt")
    assert set(second) == set(EXPECTED[fixture])
    for metric, value in EXPECTED[fixture].items():
        assert second[metric] == pytest.approx(value), metric


def test_trtllm_kv_from_block_counts_and_waiting_from_active_minus_scheduled() -> None:
    expo = parse_exposition(fixture_text("trtllm.1.txt"))
    assert detect_engine(expo.names()) == "trtllm"
    values = {r.metric: r.value for r in CanonicalMapper("trtllm").rows(1.0, expo)}
    assert values == {"kv_cache_usage": pytest.approx(0.25), "requests_running": 6.0, "requests_waiting": 4.0}


def test_llamacpp_without_kv_gauge_leaves_kv_missing() -> None:
    mapper = CanonicalMapper("llamacpp")
    _scrape(mapper, 0.0, "llamacpp.1.txt")
    second = _scrape(mapper, 2.0, "llamacpp_nokv.txt")
    assert "kv_cache_usage" not in second
    assert second["requests_running"] == 4


def test_counter_reset_after_server_restart_gives_no_negative_rate() -> None:
    mapper = CanonicalMapper("satscope")
    _scrape(mapper, 100.0, "satscope.1.txt")
    _scrape(mapper, 102.0, "satscope.2.txt")
    after = _scrape(mapper, 104.0, "satscope.3.txt")  # every counter restarted from zero
    # The increase since the restart is the new value itself (Prometheus' rate() rule).
    assert after["preemptions_per_s"] == pytest.approx(2 / 2)
    assert after["prompt_tokens_per_s"] == pytest.approx(100 / 2)
    assert after["generation_tokens_per_s"] == pytest.approx(50 / 2)
    assert after["preemptions_total"] == pytest.approx(5 + 2), "the running total continues across the reset"
    assert after["batch_size"] == pytest.approx(1.0)
    assert after["ttft_mean_s"] == pytest.approx(0.1)
    assert all(v >= 0 for v in after.values())


def test_histogram_without_new_observations_gives_no_mean() -> None:
    mapper = CanonicalMapper("vllm")
    _scrape(mapper, 0.0, "vllm.2.txt")
    same = _scrape(mapper, 1.0, "vllm.2.txt")
    assert "ttft_mean_s" not in same and "e2e_mean_s" not in same  # unknown, never 0
    assert same["generation_tokens_per_s"] == 0.0  # a counter that did not move is a real zero rate


def test_unknown_exposition_detects_no_engine() -> None:
    expo = parse_exposition("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n")
    assert detect_engine(expo.names()) is None


def test_series_of_several_engines_are_summed_and_ratios_averaged() -> None:
    text = fixture_text("vllm.1.txt").replace('engine="0"', 'engine="1"') + fixture_text("vllm.1.txt")
    values = {r.metric: r.value for r in CanonicalMapper("vllm").rows(0.0, parse_exposition(text))}
    assert values["requests_running"] == 8.0  # 4 + 4: two data-parallel engines
    assert values["kv_cache_usage"] == 0.25  # mean, not 0.5


def test_model_description_from_our_server_and_others() -> None:
    ours = model_description("satscope", parse_exposition(fixture_text("satscope.1.txt")))
    assert ours == {
        "name": "tiny", "dtype": "float32", "device": "cpu", "kernels": "torch", "parameters": 4200000,
        "weight_bytes": 16800000, "layers": 4, "kv_bytes_per_token": 8192, "flops_per_token": 8400000,
        "kv_capacity_tokens": 4096, "kv_capacity_blocks": 256,
    }
    vllm = model_description("vllm", parse_exposition(fixture_text("vllm.1.txt")))
    assert vllm == {"name": "meta-llama/Llama-3.1-8B-Instruct"}
    assert model_description("tgi", parse_exposition(fixture_text("tgi.1.txt"))) is None


def test_an_openai_base_url_target_scrapes_the_server_root() -> None:
    from satscope.probes._server import ServerProbe

    assert ServerProbe("http://127.0.0.1:8000/v1").url == "http://127.0.0.1:8000/metrics"
    assert ServerProbe("http://gw/llm/").url == "http://gw/llm/metrics"
