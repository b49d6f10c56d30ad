"""Read the bundled server's /metrics and /health over HTTP, for tests and the soak benchmark."""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["counter_sum", "health", "scrape", "wait_idle"]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `url/metrics`, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def counter_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of `name` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=10).json()


def wait_idle(url: str, timeout_s: float) -> dict[str, Any]:
    """Poll /health until no sequence runs or waits and the KV pool is empty; the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        h = health(url)
        idle = h["num_requests_running"] == 0 and h["num_requests_waiting"] == 0 and h["kv_cache_usage"] == 0.0
        if idle or time.monotonic() > deadline:
            return h
        time.sleep(0.1)
