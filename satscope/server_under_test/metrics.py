"""The server's Prometheus metrics (names in docs/server-metrics.md), in a registry of its own.

Each engine gets a private CollectorRegistry, so several servers can live in one process (tests).
The engine thread records; prometheus-client's metrics are thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["EngineMetrics", "ModelFacts"]

# `*_created` series double the exposition for nothing a probe reads (vLLM turns them off too).
disable_created_metrics()

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)


@dataclass(slots=True, frozen=True)
class ModelFacts:
    """What is served and how; the figures reports need for model-bandwidth utilisation."""

    model: str
    dtype: str
    device: str
    kernels: str
    parameters: int
    weight_bytes: int
    layers: int
    kv_bytes_per_token: int
    kv_capacity_blocks: int
    block_size: int


class EngineMetrics:
    def __init__(self, facts: ModelFacts) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        p = "satscope_"
        self.running = Gauge(f"{p}num_requests_running", "Sequences in the running batch", registry=r)
        self.waiting = Gauge(f"{p}num_requests_waiting", "Sequences waiting, preempted ones included", registry=r)
        self.kv_usage = Gauge(f"{p}kv_cache_usage_ratio", "Used KV blocks / total KV blocks", registry=r)
        self.kv_used = Gauge(f"{p}kv_cache_used_blocks", "KV blocks in use", registry=r)
        Gauge(f"{p}kv_cache_capacity_blocks", "KV pool size in blocks", registry=r).set(facts.kv_capacity_blocks)
        Gauge(f"{p}kv_cache_capacity_tokens", "KV pool size in tokens", registry=r).set(
            facts.kv_capacity_blocks * facts.block_size
        )
        self.cached_blocks = Gauge(
            f"{p}prefix_cache_blocks", "KV blocks holding a cached prefix, in use or free", registry=r
        )
        self.cached_free_blocks = Gauge(
            f"{p}prefix_cache_free_blocks", "Free KV blocks still holding a cached prefix (evictable)", registry=r
        )
        self.prefix_queries = Counter(
            f"{p}prefix_cache_queries", "Prompt tokens looked up in the prefix cache at admission", registry=r
        )
        self.prefix_hits = Counter(f"{p}prefix_cache_hits", "Prompt tokens found in the prefix cache", registry=r)
        self.prefix_evictions = Counter(
            f"{p}prefix_cache_evictions", "Cached blocks evicted to make room for new ones", registry=r
        )
        self._prefix_seen = (0, 0, 0)
        self.preemptions = Counter(f"{p}num_preemptions", "Sequences preempted by recompute", registry=r)
        self.prompt_tokens = Counter(f"{p}prompt_tokens", "Prompt tokens prefilled", registry=r)
        self.generation_tokens = Counter(f"{p}generation_tokens", "Tokens generated", registry=r)
        self.requests = Counter(f"{p}requests", "Finished requests", ["finish_reason"], registry=r)
        self.rejected = Counter(f"{p}requests_rejected", "Requests refused before scheduling", ["reason"], registry=r)
        for reason in ("stop", "length", "abort", "error"):
            self.requests.labels(finish_reason=reason)
        for reason in ("queue_full", "bad_request", "unauthorized", "too_large"):
            self.rejected.labels(reason=reason)
        self.batch_size = Histogram(f"{p}batch_size", "Sequences per engine step", buckets=_BATCH_BUCKETS, registry=r)
        self.step_duration = Histogram(
            f"{p}step_duration_seconds", "Wall time of one engine step", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            f"{p}time_to_first_token_seconds", "Arrival to first token", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.itl = Histogram(
            f"{p}inter_token_latency_seconds", "Between consecutive tokens", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.e2e = Histogram(
            f"{p}e2e_request_latency_seconds", "Arrival to finish", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_time = Histogram(
            f"{p}request_queue_time_seconds", "Arrival to first scheduled", buckets=_LATENCY_BUCKETS, registry=r
        )
        Info(f"{p}model", "What is served and how", registry=r).info(
            {"model": facts.model, "dtype": facts.dtype, "device": facts.device, "kernels": facts.kernels}
        )
        Gauge(f"{p}model_parameters", "Parameter count", registry=r).set(facts.parameters)
        Gauge(f"{p}model_weight_bytes", "Bytes of weights read per forward pass", registry=r).set(facts.weight_bytes)
        Gauge(f"{p}model_layers", "Decoder layers", registry=r).set(facts.layers)
        Gauge(f"{p}model_kv_bytes_per_token", "KV-cache bytes per token, all layers, K and V", registry=r).set(
            facts.kv_bytes_per_token
        )
        Gauge(f"{p}model_flops_per_token", "Forward FLOPs per token, attention excluded", registry=r).set(
            2 * facts.parameters
        )

    def record_prefix_cache(self, scheduler: Any, block_manager: Any) -> None:
        """Bring the prefix-cache gauges and counters up to the scheduler's and pool's running totals."""
        self.cached_blocks.set(block_manager.num_cached_blocks)
        self.cached_free_blocks.set(block_manager.num_cached_free_blocks)
        now = (scheduler.prefix_queries, scheduler.prefix_hits, block_manager.num_evictions)
        for counter, value, seen in zip(
            (self.prefix_queries, self.prefix_hits, self.prefix_evictions), now, self._prefix_seen, strict=True
        ):
            counter.inc(value - seen)
        self._prefix_seen = now

    def render(self) -> bytes:
        return generate_latest(self.registry)
