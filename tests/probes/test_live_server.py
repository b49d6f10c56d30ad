"""Our own server scraped live under load: KV usage rises, then falls back to 0 when the load ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from satscope.probes import ProbeConfig, ProbeRunner
from tests.helpers import bundled_server

pytestmark = pytest.mark.slow


def _load(url: str, users: int, requests_each: int, deadline: float) -> list[int]:
    """Closed-loop load from ``users`` threads, bounded in count and time; returns HTTP statuses."""
    statuses: list[int] = []

    def user() -> None:
        with httpx.Client(timeout=60.0, trust_env=False) as client:
            for _ in range(requests_each):
                if time.monotonic() > deadline:
                    return
                body = {"model": "tiny", "prompt": "the quick brown fox " * 12, "max_tokens": 48,
                        "ignore_eos": True, "temperature": 0.0}
                statuses.append(client.post(f"{url}/v1/completions", json=body).status_code)

    threads = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_kv_usage_rises_under_load_and_returns_to_zero(tmp_path: Path) -> None:
    flags = ("--preset", "tiny", "--kv-blocks", "96", "--step-delay-ms", "15", "--torch-threads", "1")
    with bundled_server(*flags) as server:
        runner = ProbeRunner(ProbeConfig(target=server.url, out=tmp_path, gpu=False, server_pid=server.proc.pid,
                                         interval_s=0.2), quiet=True)
        runner.start()
        try:
            time.sleep(0.6)
            statuses = _load(server.url, users=6, requests_each=3, deadline=time.monotonic() + 60)
            time.sleep(1.0)  # a few idle scrapes after the last request ended
        finally:
            runner.stop()
    assert statuses and all(s == 200 for s in statuses)
    rows = runner.buffer.table().to_pylist()
    kv = [r["value"] for r in rows if r["metric"] == "kv_cache_usage"]
    running = [r["value"] for r in rows if r["metric"] == "requests_running"]
    gen = [r["value"] for r in rows if r["metric"] == "generation_tokens_per_s"]
    assert kv[0] == 0.0, "idle before the load"
    assert max(kv) >= 0.3, f"KV usage should rise under load, saw max {max(kv)}"
    assert kv[-1] == 0.0, "KV blocks are freed when the load ends"
    assert max(running) >= 2
    assert max(gen) > 0 and min(gen) >= 0
    assert any(r["metric"] == "itl_mean_s" for r in rows)
    assert any(r["metric"] == "server_cpu_cores" and r["value"] > 0 for r in rows)
    probes = runner.probes_json()
    assert probes["engine"] == "satscope"
    assert probes["sources"]["server"] == "ok"
    assert probes["model"]["name"] == "tiny" and probes["model"]["weight_bytes"] > 0
    assert probes["model"]["kv_bytes_per_token"] > 0
