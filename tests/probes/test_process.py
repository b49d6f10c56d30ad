"""The ``python -m probes`` contract with the orchestrator, on real subprocesses and real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq

from satscope.run_format import PROBES_FILE, SAMPLES_FILE, samples_schema
from tests.probes.conftest import ExpositionServer, fixture_text

REPO = Path(__file__).resolve().parents[2]


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "satscope.probes", *args]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_sigterm_leaves_valid_samples_and_probes_json(tmp_path: Path, exposition_server: ExpositionServer) -> None:
    exposition_server.body = fixture_text("vllm.1.txt")
    before = time.monotonic()
    proc = _start(["--target", exposition_server.url, "--out", str(tmp_path), "--no-gpu",
                   "--interval-s", "0.2", "--flush-interval-s", "0.5", "--server-pid", str(os.getpid())])
    _wait_for(tmp_path / SAMPLES_FILE)
    exposition_server.body = fixture_text("vllm.2.txt")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    after = time.monotonic()
    assert proc.returncode == 0, err

    table = pq.read_table(tmp_path / SAMPLES_FILE)
    assert table.schema.equals(samples_schema())
    rows = table.to_pylist()
    assert all(before <= r["t"] <= after for r in rows), "times are on this machine's monotonic clock"
    server = {r["metric"]: r["value"] for r in rows if r["source"] == "server"}
    assert server["kv_cache_usage"] == 0.75  # the scrape after the body changed
    assert server["requests_running"] == 8.0
    assert {"host_cpu_util", "host_mem_used_bytes", "server_rss_bytes", "server_cpu_cores"} <= {
        r["metric"] for r in rows if r["source"] == "host"}
    assert all(r["value"] >= 0 for r in rows if r["metric"].endswith("_per_s"))

    probes = json.loads((tmp_path / PROBES_FILE).read_text())
    assert probes["sources"] == {"server": "ok", "host": "ok"}
    assert probes["unavailable"] == {}
    assert probes["engine"] == "vllm"
    assert probes["model"] == {"name": "meta-llama/Llama-3.1-8B-Instruct"}
    assert probes["gpus"] == []
    # the host's copy bandwidth, measured once: the peak for MBU of a CPU server (1 GB/s..1 TB/s is a real machine)
    assert 1e9 < probes["host"]["memory_bandwidth_bytes_per_s"] < 1e12
    assert "numpy copy" in probes["host"]["memory_bandwidth_method"]
    assert probes["interval_s"] == {"server": 0.2, "host": 0.2}
    assert probes["rows"] == len(rows)


def test_sigkill_leaves_the_last_complete_flush(tmp_path: Path, exposition_server: ExpositionServer) -> None:
    exposition_server.body = fixture_text("satscope.1.txt")
    proc = _start(["--target", exposition_server.url, "--out", str(tmp_path), "--no-gpu",
                   "--interval-s", "0.1", "--flush-interval-s", "0.2"])
    _wait_for(tmp_path / SAMPLES_FILE)
    time.sleep(0.7)
    proc.kill()
    proc.communicate(timeout=10)
    table = pq.read_table(tmp_path / SAMPLES_FILE)  # complete, never half-written
    assert table.num_rows > 0
    assert json.loads((tmp_path / PROBES_FILE).read_text())["sources"]["host"] == "ok"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_duration_ends_the_run_and_an_unreachable_target_is_explained(tmp_path: Path) -> None:
    proc = _start(["--target", "http://127.0.0.1:9", "--out", str(tmp_path), "--no-gpu", "--duration", "1"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    probes = json.loads((tmp_path / PROBES_FILE).read_text())
    assert probes["sources"]["server"] == "unavailable"
    assert "ConnectError" in probes["unavailable"]["server"]
    assert err.count("server unavailable") == 1  # said once, clearly


def test_gpu_rows_flow_through_the_process_with_a_fake_nvml(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    # sitecustomize runs at interpreter start: it swaps in the fake before the probes import pynvml.
    (shim / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.probes.fake_pynvml import FakeGpu, make_fake_pynvml, real
        sys.modules["pynvml"] = make_fake_pynvml([FakeGpu(name="NVIDIA H200", gpm_values={{
            real.NVML_GPM_METRIC_DRAM_BW_UTIL: 80.0, real.NVML_GPM_METRIC_SM_OCCUPANCY: 50.0}})])
    """))
    out = tmp_path / "run"
    proc = _start(["--out", str(out), "--duration", "1.5", "--interval-s", "0.25"],
                  env={"PYTHONPATH": f"{shim}{os.pathsep}{REPO}"})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = pq.read_table(out / SAMPLES_FILE).to_pylist()
    dram = [r for r in rows if r["metric"] == "gpu_dram_bw_util"]
    assert dram and all(r["value"] == 0.8 and r["labels"] == "gpu=0" and r["source"] == "gpu" for r in dram)
    probes = json.loads((out / PROBES_FILE).read_text())
    assert probes["sources"]["gpu"] == "ok"
    assert probes["gpus"][0]["name"] == "NVIDIA H200" and probes["gpus"][0]["gpm"] is True


def test_bad_arguments_exit_2() -> None:
    proc = _start(["--target", "localhost:8000"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "http://" in err
