"""Which engine serves the target, and how its metric names map onto the canonical set.

Each engine is a table of declarative specs, so the same table drives both the live scraper
(``_server.py``, reading an :class:`~satscope.probes._exposition.Exposition`) and the PromQL that the
Prometheus source sends (``_prometheus.py``). A metric an engine does not export has no spec and
stays missing; where engines renamed a metric across versions, the names are tried in order.
Names come from each engine's documentation (see docs/probes.md for the sources).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ENGINES", "ENGINE_PREFIXES", "Counter", "CounterRatio", "Difference", "Gauge", "HistMean", "Pick",
           "Ratio", "detect_engine"]


@dataclass(slots=True, frozen=True)
class Pick:
    """One sample name, optionally narrowed to series whose labels match ``where``."""

    name: str
    where: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Gauge:
    """``canonical`` = the first of ``picks`` present, summed over series (``avg`` for ratios)."""

    canonical: str
    picks: tuple[Pick, ...]
    agg: str = "sum"


@dataclass(slots=True, frozen=True)
class Ratio:
    """``canonical`` = sum(numerator) / sum(denominator)."""

    canonical: str
    numerator: Pick
    denominator: Pick


@dataclass(slots=True, frozen=True)
class Difference:
    """``canonical`` = sum(minuend) - sum(subtrahend), floored at 0."""

    canonical: str
    minuend: Pick
    subtrahend: Pick


@dataclass(slots=True, frozen=True)
class Counter:
    """A counter (the first of ``names`` present): its rate and, optionally, its running total."""

    names: tuple[str, ...]
    rate_metric: str
    total_metric: str | None = None


@dataclass(slots=True, frozen=True)
class HistMean:
    """Mean of a histogram (or summary) over each interval, from ``_sum`` and ``_count`` deltas."""

    canonical: str
    bases: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class CounterRatio:
    """``canonical`` = increase(numerator) / increase(sum of denominators) over each interval.

    ``alternatives`` are ``(numerator, denominators)`` name sets tried in order (engines renamed
    them across versions); a set counts only if all its names are present. An interval whose
    denominator did not grow has no value (unknown, not zero). Hit rates come from counters this
    way rather than from an engine's own gauge, whose window is the engine's and not the interval.
    """

    canonical: str
    alternatives: tuple[tuple[str, tuple[str, ...]], ...]


Spec = Gauge | Ratio | Difference | Counter | HistMean | CounterRatio


def _g(canonical: str, *names: str, agg: str = "sum") -> Gauge:
    return Gauge(canonical, tuple(Pick(n) for n in names), agg)


ENGINES: dict[str, tuple[Spec, ...]] = {
    "satscope": (
        _g("kv_cache_usage", "satscope_kv_cache_usage_ratio", agg="avg"),
        _g("requests_running", "satscope_num_requests_running"),
        _g("requests_waiting", "satscope_num_requests_waiting"),
        Counter(("satscope_num_preemptions_total",), "preemptions_per_s", "preemptions_total"),
        CounterRatio("prefix_cache_hit_rate",
                     (("satscope_prefix_cache_hits_total", ("satscope_prefix_cache_queries_total",)),)),
        Counter(("satscope_prefix_cache_hits_total",), "prefix_cache_hit_tokens_per_s"),
        Counter(("satscope_prefix_cache_queries_total",), "prefix_cache_query_tokens_per_s"),
        Counter(("satscope_prompt_tokens_total",), "prompt_tokens_per_s"),
        Counter(("satscope_generation_tokens_total",), "generation_tokens_per_s"),
        HistMean("batch_size", ("satscope_batch_size",)),
        HistMean("ttft_mean_s", ("satscope_time_to_first_token_seconds",)),
        HistMean("itl_mean_s", ("satscope_inter_token_latency_seconds",)),
        HistMean("e2e_mean_s", ("satscope_e2e_request_latency_seconds",)),
        HistMean("queue_time_mean_s", ("satscope_request_queue_time_seconds",)),
    ),
    "vllm": (
        # kv_cache_usage_perc (V1) replaced gpu_cache_usage_perc (V0); both are 0-1 despite the name.
        _g("kv_cache_usage", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", agg="avg"),
        _g("requests_running", "vllm:num_requests_running"),
        _g("requests_waiting", "vllm:num_requests_waiting"),
        Counter(("vllm:num_preemptions_total",), "preemptions_per_s", "preemptions_total"),
        # Token counters: prefix_cache_* (V1), gpu_prefix_cache_* (early V1); V0's gauge is a block hit rate.
        CounterRatio("prefix_cache_hit_rate",
                     (("vllm:prefix_cache_hits_total", ("vllm:prefix_cache_queries_total",)),
                      ("vllm:gpu_prefix_cache_hits_total", ("vllm:gpu_prefix_cache_queries_total",)))),
        _g("prefix_cache_hit_rate", "vllm:gpu_prefix_cache_hit_rate", agg="avg"),
        Counter(("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
                "prefix_cache_hit_tokens_per_s"),
        Counter(("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
                "prefix_cache_query_tokens_per_s"),
        Counter(("vllm:prompt_tokens_total",), "prompt_tokens_per_s"),
        Counter(("vllm:generation_tokens_total",), "generation_tokens_per_s"),
        HistMean("ttft_mean_s", ("vllm:time_to_first_token_seconds",)),
        HistMean("itl_mean_s", ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
        HistMean("e2e_mean_s", ("vllm:e2e_request_latency_seconds",)),
        HistMean("queue_time_mean_s", ("vllm:request_queue_time_seconds",)),
    ),
    "sglang": (
        _g("kv_cache_usage", "sglang:token_usage", agg="avg"),
        _g("requests_running", "sglang:num_running_reqs"),
        _g("requests_waiting", "sglang:num_queue_reqs"),
        # SGLang calls preemption "retraction".
        Counter(("sglang:num_retracted_requests_total",), "preemptions_per_s", "preemptions_total"),
        # SGLang exports only its own gauge (RadixAttention hit rate over its logging window).
        _g("prefix_cache_hit_rate", "sglang:cache_hit_rate", agg="avg"),
        Counter(("sglang:prompt_tokens_total",), "prompt_tokens_per_s"),
        Counter(("sglang:generation_tokens_total",), "generation_tokens_per_s"),
        HistMean("ttft_mean_s", ("sglang:time_to_first_token_seconds",)),
        HistMean("itl_mean_s",
                 ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds")),
        HistMean("e2e_mean_s", ("sglang:e2e_request_latency_seconds",)),
        HistMean("queue_time_mean_s", ("sglang:queue_time_seconds",)),
    ),
    "tgi": (
        _g("requests_running", "tgi_batch_current_size"),
        _g("requests_waiting", "tgi_queue_size"),
        # TGI counts tokens per finished request in histograms; their _sum is a counter of tokens.
        Counter(("tgi_request_input_length_sum",), "prompt_tokens_per_s"),
        Counter(("tgi_request_generated_tokens_sum",), "generation_tokens_per_s"),
        HistMean("itl_mean_s", ("tgi_request_mean_time_per_token_duration",)),
        HistMean("e2e_mean_s", ("tgi_request_duration",)),
        HistMean("queue_time_mean_s", ("tgi_request_queue_duration",)),
    ),
    "llamacpp": (
        # kv_cache_usage_ratio was dropped in later llama.cpp releases: present only on some builds.
        _g("kv_cache_usage", "llamacpp:kv_cache_usage_ratio", agg="avg"),
        _g("requests_running", "llamacpp:requests_processing"),
        _g("requests_waiting", "llamacpp:requests_deferred"),
        Counter(("llamacpp:prompt_tokens_total",), "prompt_tokens_per_s"),
        Counter(("llamacpp:tokens_predicted_total",), "generation_tokens_per_s"),
        # Newer builds only; there prompt_tokens_total excludes the cached tokens.
        CounterRatio("prefix_cache_hit_rate",
                     (("llamacpp:prompt_tokens_cached_total",
                       ("llamacpp:prompt_tokens_cached_total", "llamacpp:prompt_tokens_total")),)),
        Counter(("llamacpp:prompt_tokens_cached_total",), "prefix_cache_hit_tokens_per_s"),
    ),
    "trtllm": (
        # used / max blocks: the backend's "fraction" series is not documented as this ratio.
        Ratio("kv_cache_usage",
              Pick("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "used"}),
              Pick("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "max"})),
        Gauge("requests_running", (Pick("nv_trt_llm_request_metrics", {"request_type": "scheduled"}),)),
        Difference("requests_waiting",
                   Pick("nv_trt_llm_request_metrics", {"request_type": "active"}),
                   Pick("nv_trt_llm_request_metrics", {"request_type": "scheduled"})),
    ),
}

# Detection order also breaks ties: our own server first, then by how specific the prefix is.
ENGINE_PREFIXES: dict[str, str] = {
    "satscope": "satscope_",
    "vllm": "vllm:",
    "sglang": "sglang:",
    "tgi": "tgi_",
    "llamacpp": "llamacpp:",
    "trtllm": "nv_trt_llm_",
}


def detect_engine(names: Iterable[str]) -> str | None:
    """The engine whose prefix most metric names carry, or ``None`` if no known prefix appears."""
    counts = dict.fromkeys(ENGINE_PREFIXES, 0)
    for name in names:
        for engine, prefix in ENGINE_PREFIXES.items():
            if name.startswith(prefix):
                counts[engine] += 1
    best = max(counts, key=lambda e: counts[e])
    return best if counts[best] > 0 else None
