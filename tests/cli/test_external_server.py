"""`satscope run` against an external server: `--server-pid` and `--metrics-url` feed the probes,
and the model facts a llama.cpp-style `/v1/models` publishes (`meta.n_params`, `meta.size`) make
the report compute MBU. The server is a real subprocess on loopback (tests/cli/llamacpp_like.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.cli.llamacpp_like import META
from tests.helpers import free_port, wait_http_ok
from tests.loadgen.conftest import ROOT


def test_server_pid_metrics_url_and_llamacpp_model_facts(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.cli.llamacpp_like", "--port", str(port),
                               "--metrics-port", str(metrics_port)], cwd=ROOT)
    out = tmp_path / "run"
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30, server)
        cmd = [sys.executable, "-m", "satscope", "run", "--target", f"http://127.0.0.1:{port}", "--users", "2",
               "--duration", "5", "--output-len", "8", "--input-len", "16", "--no-gpu",
               "--server-pid", str(server.pid), "--metrics-url", f"http://127.0.0.1:{metrics_port}/metrics",
               "--out", str(out)]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    finally:
        server.terminate()
        server.wait(10)
    assert res.returncode == 0, res.stderr
    probes = json.loads((out / "probes.json").read_text())
    assert probes["engine"] == "llamacpp" and probes["sources"]["server"] == "ok"
    model = probes["model"]
    assert model["name"] == "tinyllama.gguf"
    assert model["parameters"] == META["n_params"] and model["weight_bytes"] == META["size"]
    samples = pd.read_parquet(out / "samples.parquet")
    host = samples[samples.source == "host"]
    assert (host.metric == "server_rss_bytes").any() and (host.metric == "server_cpu_cores").any()
    assert samples[samples.metric == "generation_tokens_per_s"].value.max() > 0  # scraped at --metrics-url
    util = json.loads((out / "summary.json").read_text())["utilization"]
    assert util["weight_bytes"] == META["size"] and util["peak_source"] == "run:host_memory_bandwidth"
    assert util["mbu_max"] is not None and util["mbu_max"] > 0
