"""A real Prometheus server scraping our server, and the Prometheus source reading the window back."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from satscope.probes import ProbeConfig, ProbeRunner
from satscope.probes._prometheus import promql_for
from tests.helpers import bundled_server, free_port, wait_http_ok

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)

pytestmark = pytest.mark.slow


def test_promql_maps_each_canonical_metric() -> None:
    names = {"vllm:gpu_cache_usage_perc", "vllm:num_requests_running", "vllm:generation_tokens_total",
             "vllm:time_per_output_token_seconds_sum", "vllm:time_per_output_token_seconds_count"}
    queries = promql_for("vllm", names, 'job="llm"', window_s=20)
    assert queries == {
        "kv_cache_usage": 'avg by (instance) (vllm:gpu_cache_usage_perc{job="llm"})',
        "requests_running": 'sum by (instance) (vllm:num_requests_running{job="llm"})',
        "generation_tokens_per_s": 'sum by (instance) (rate(vllm:generation_tokens_total{job="llm"}[20s]))',
        "itl_mean_s": 'sum by (instance) (rate(vllm:time_per_output_token_seconds_sum{job="llm"}[20s])) / '
                      'sum by (instance) (rate(vllm:time_per_output_token_seconds_count{job="llm"}[20s]))',
    }


def _post(url: str, deadline: float) -> None:
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        for _ in range(3):
            if time.monotonic() > deadline:
                return
            client.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "a b c d e f g " * 10,
                                                       "max_tokens": 120, "ignore_eos": True})


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (Debian package `prometheus`; .ci/run "
                                               "installs it)")
def test_prometheus_source_reads_back_what_prometheus_scraped(tmp_path: Path) -> None:
    flags = ("--preset", "tiny", "--kv-blocks", "96", "--step-delay-ms", "15", "--torch-threads", "1")
    with bundled_server(*flags) as server:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n"
            "scrape_configs:\n  - job_name: satscope\n    scrape_interval: 500ms\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http_ok(f"{url}/-/ready", 60, prom)
            runner = ProbeRunner(ProbeConfig(target=server.url, out=tmp_path / "run", gpu=False, prometheus_url=url,
                                             prometheus_selector='job="satscope"', prometheus_rate_window_s=2.0,
                                             interval_s=0.5), quiet=True)
            runner.start()
            time.sleep(1.5)
            deadline = time.monotonic() + 40
            users = [threading.Thread(target=_post, args=(server.url, deadline)) for _ in range(6)]
            for user in users:
                user.start()
            for user in users:
                user.join()
            time.sleep(2.0)  # let Prometheus scrape the idle server
            runner.stop()
        finally:
            prom.terminate()
            prom.wait(timeout=20)
    rows = runner.buffer.table().to_pylist()
    from_prom = [r for r in rows if r["source"] == "prometheus"]
    assert from_prom, f"no rows from Prometheus; probes.json: {runner.probes_json()}"
    assert runner.probes_json()["sources"]["prometheus"] == "ok"
    assert all(r["labels"] == f"instance=127.0.0.1:{server.port}" for r in from_prom)
    assert all(runner.start_s - 1.0 <= r["t"] <= runner.end_s + 1.0 for r in from_prom), "mapped onto monotonic"
    kv = [r["value"] for r in from_prom if r["metric"] == "kv_cache_usage"]
    assert max(kv) > 0.1 and kv[-1] == 0.0
    gen = [r["value"] for r in from_prom if r["metric"] == "generation_tokens_per_s"]
    assert max(gen) > 0 and min(gen) >= 0
    metrics = {r["metric"] for r in from_prom}
    assert {"requests_running", "requests_waiting", "itl_mean_s"} <= metrics
    # The same quantity seen live by the scraper and read back from Prometheus agrees in its peak.
    live_kv = max(r["value"] for r in rows if r["source"] == "server" and r["metric"] == "kv_cache_usage")
    assert max(kv) == pytest.approx(live_kv, abs=0.35)
