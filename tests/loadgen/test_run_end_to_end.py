"""`satscope run` as a subprocess against the deterministic server: timing accuracy, stage labels,
usage audit, malformed streams, open loop, 2 workers, a target that dies, Ctrl-C, bad flags."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import free_port
from tests.loadgen.conftest import ROOT, fake_server, run_satscope, satscope_cmd


def _wait_served(server, n: int, timeout_s: float = 60) -> None:
    """Until the server has served ``n`` requests (start-up time varies on a shared machine)."""
    deadline = time.monotonic() + timeout_s
    while server.records()["served"] < n:
        assert time.monotonic() < deadline, "the load generator never got going"
        time.sleep(0.1)


def _load(run_dir):
    manifest = json.loads((run_dir / "run.json").read_text())
    req = pq.read_table(run_dir / "requests.parquet").to_pandas()
    tok = pq.read_table(run_dir / "tokens.parquet").to_pandas()
    return manifest, req, tok


def test_timing_matches_the_servers_record_and_stages_land_in_records(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.03, itl=0.01)
    out = tmp_path / "run"
    res = run_satscope(
        "--target",
        server.url,
        "--shape",
        "step",
        "--users",
        "4",
        "--start-load",
        "2",
        "--steps",
        "2",
        "--duration",
        "3",
        "--output-len",
        "12",
        "--out",
        str(out),
        "--api-key",
        "sk-test-SECRET",
    )
    assert res.returncode == 0, res.stderr
    manifest, req, tok = _load(out)
    rec = server.records()
    assert manifest["status"] == "complete"
    assert len(req) == rec["served"] == manifest["loadgen"]["records_written"]
    assert set(req.stage) == {"step-1", "step-2"}
    assert set(req[req.intended_start >= manifest["stages"][1]["start_s"]].stage) == {"step-2"}
    assert (req.status == "ok").all() and (req.output_chunks == 12).all() and not req.token_mismatch.any()
    itl_err, ttft_err = [], []
    for rid, g in tok.groupby("request_id"):
        sent = np.asarray(rec["requests"][rid]["sent"])
        got = g.sort_values("index").t.to_numpy()
        itl_err.extend(np.abs(np.diff(got) - np.diff(sent)))
        row = req.set_index("request_id").loc[rid]
        ttft_err.append(row.ttft_s - (sent[0] - rec["requests"][rid]["received"]))  # client − server
    # The tolerance is this run's own scheduling noise: how late the load generator's 0.5 s sleeps
    # woke (median, from loadgen.parquet) and how far its token gaps strayed from the server's
    # (|ITL error| p90). A busy host widens it; a timing bug (a clock started late, a token stamped
    # after parsing or at the end) stays far outside it.
    lag = pq.read_table(out / "loadgen.parquet").to_pandas()
    lag_p50 = float(np.median(lag.loc[lag.metric == "loadgen_loop_lag_s", "value"]))
    assert np.median(itl_err) < 1e-3 + lag_p50, (np.median(itl_err), lag_p50)
    noise = lag_p50 + 2 * float(np.quantile(itl_err, 0.9))
    assert 0 < np.median(ttft_err) < 1e-3 + noise, (np.median(ttft_err), noise)
    # causality: no request measured faster than the server served it (the server stamps a token
    # before writing it and a request once read; one clock on one host)
    assert min(ttft_err) > -1e-4, (min(ttft_err), noise)
    assert all(r["authorization"] == "Bearer sk-test-SECRET" for r in rec["requests"].values())
    for f in out.iterdir():
        assert b"sk-test-SECRET" not in f.read_bytes(), f.name


def test_usage_audit_and_malformed_streams_become_records(server_factory, tmp_path) -> None:
    server = server_factory(mode="mixed", ttft=0.005, itl=0.002)
    out = tmp_path / "run"
    res = run_satscope(
        "--target",
        server.url,
        "--users",
        "2",
        "--duration",
        "2",
        "--output-len",
        "6",
        "--endpoint",
        "chat",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    manifest, req, _ = _load(out)
    mode_of = {rid: r["mode"] for rid, r in server.records()["requests"].items()}
    req["mode"] = req.request_id.map(mode_of)
    expected = {
        "normal": "ok",
        "lie_usage": "ok",
        "bad_json": "malformed",
        "no_done": "malformed",
        "truncate": "disconnected",
        "http_500": "http_error",
        "stream_error": "http_error",
    }
    for mode, status in expected.items():
        rows = req[req["mode"] == mode]
        assert len(rows) and (rows.status == status).all(), (mode, rows.status.unique(), rows.error.unique())
    assert req[req["mode"] == "lie_usage"].token_mismatch.all()
    assert not req[req["mode"] == "normal"].token_mismatch.any()
    assert (req[req["mode"] == "normal"].output_chunks == 6).all()  # vLLM-style role chunk is not a token
    assert req[req["mode"] == "http_500"].http_status.eq(500).all()
    v = manifest["validity"]
    assert v["token_mismatches"] == int(req.token_mismatch.sum()) > 0
    assert v["target_errors"] == int((req.status != "ok").sum()) > 0


def test_open_loop_constant_rate(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.01, itl=0.005)
    out = tmp_path / "run"
    res = run_satscope(
        "--target",
        server.url,
        "--rate",
        "20",
        "--arrival",
        "constant",
        "--duration",
        "3",
        "--output-len",
        "4",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    manifest, req, _ = _load(out)
    assert len(req) == pytest.approx(60, abs=2) and len(req) == server.records()["served"]
    gaps = np.diff(np.sort(req.intended_start.to_numpy()))
    assert np.median(gaps) == pytest.approx(0.05, abs=1e-6)
    assert (req.start - req.intended_start).median() < 0.005
    assert (req.ttft_intended_s >= req.ttft_s).all()
    assert manifest["stages"][0]["kind"] == "open" and manifest["stages"][0]["rate_rps"] == 20


def test_two_local_workers_lose_no_records(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.01, itl=0.005)
    out = tmp_path / "run"
    res = run_satscope(
        "--target",
        server.url,
        "--users",
        "6",
        "--duration",
        "3",
        "--output-len",
        "8",
        "--workers",
        "2",
        "--out",
        str(out),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    manifest, req, tok = _load(out)
    assert len(req) == server.records()["served"] > 50
    assert set(req.worker) == {"w0", "w1"} and req.request_id.is_unique
    assert len(tok) == int(req.output_chunks.sum())
    assert manifest["loadgen"]["workers"] == 2 and not any("missing" in n for n in manifest["validity"]["notes"])
    assert set(manifest["loadgen"]["worker_clock_offsets_s"]) == {"w0", "w1"}


def test_target_killed_mid_run_leaves_a_valid_run(tmp_path) -> None:
    out = tmp_path / "run"
    with fake_server(ttft=0.01, itl=0.01) as server:
        proc = subprocess.Popen(
            satscope_cmd(
                "--target",
                server.url,
                "--users",
                "4",
                "--duration",
                "4",
                "--output-len",
                "50",
                "--timeout",
                "5",
                "--out",
                str(out),
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_served(server, 8)
        server.proc.kill()
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    manifest, req, _ = _load(out)
    assert manifest["status"] == "complete"
    assert (req.status == "ok").any()
    assert req.status.isin(["disconnected", "connection_error"]).sum() == manifest["validity"]["target_errors"] > 0


def test_ctrl_c_marks_the_run_interrupted(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.01, itl=0.01)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        satscope_cmd(
            "--target", server.url, "--users", "3", "--duration", "60", "--output-len", "10", "--out", str(out)
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_served(server, 3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 20
    manifest, req, _ = _load(out)
    assert manifest["status"] == "interrupted" and manifest["validity"]["interrupted"], err
    assert manifest["stages"] and manifest["stages"][-1]["end_s"] <= manifest["end_s"]  # as it ran, not as planned
    assert len(req) > 0 and proc.returncode == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--users", "2"], "exactly one of --target URL and --serve"),
        (["--target", "http://127.0.0.1:9", "--users", "2"], "unreachable"),
        (["--target", "http://127.0.0.1:9", "--users", "2", "--rate", "3"], "exactly one of --users"),
        (["--target", "http://127.0.0.1:9", "--users", "2", "--input-len", "gauss:3"], "unknown"),
        (["--target", "http://127.0.0.1:9", "--users", "2", "--dataset", "/nonexistent.json"], "cannot read dataset"),
        (["--target", "http://127.0.0.1:9", "--users", "2", "--endpoint", "embeddings"], "endpoint"),
    ],
)
def test_bad_input_is_one_line_before_any_load(tmp_path, args: list[str], message: str) -> None:
    res = run_satscope(*args, "--out", str(tmp_path / "run"), timeout=30)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "run").exists()


def test_non_streaming_requests_record_usage_without_token_times(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.01, itl=0.002)
    out = tmp_path / "run"
    res = run_satscope(
        "--target", server.url, "--users", "2", "--duration", "2", "--output-len", "5", "--no-stream", "--out", str(out)
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    _, req, tok = _load(out)
    assert len(req) == server.records()["served"] and (req.status == "ok").all()
    assert (~req.stream).all() and (req.output_tokens == 5).all() and (req.output_chunks == 0).all()
    assert req.first_token.isna().all() and not req.token_mismatch.any() and len(tok) == 0


def test_master_and_a_separately_started_worker(server_factory, tmp_path) -> None:
    """The several-machines path (`--master` / `--worker --master-host`), both on this machine."""
    server = server_factory(ttft=0.01, itl=0.005)
    out = tmp_path / "run"
    port = str(free_port())
    master = subprocess.Popen(
        satscope_cmd("--target", server.url, "--users", "3", "--duration", "3", "--output-len", "5",
                     "--master", "--workers", "1", "--master-port", port, "--out", str(out)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "satscope", "run", "--worker", "--master-host", "127.0.0.1", "--master-port", port],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _, err = master.communicate(timeout=120)
        assert master.returncode == 0, err
        assert worker.wait(timeout=60) == 0
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    manifest, req, _ = _load(out)
    assert len(req) == server.records()["served"] > 10 and set(req.worker) == {"w0"}
    assert manifest["loadgen"]["worker_clock_offsets_s"] == {"w0": 0.0}  # same host: one clock


def test_a_second_ctrl_c_cuts_requests_in_flight(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.01, itl=0.05)  # 400 tokens: 20 s per request
    out = tmp_path / "run"
    proc = subprocess.Popen(
        satscope_cmd("--target", server.url, "--users", "3", "--duration", "60", "--output-len", "400",
                     "--out", str(out)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_served(server, 3)
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 15, "the second Ctrl-C did not cut the 20 s requests short"
    manifest, req, tok = _load(out)
    assert manifest["status"] == "interrupted", err
    cut = req[req.status == "disconnected"]
    assert len(cut) == 3 and cut.error.str.contains("cut off").all() and (cut.output_chunks > 10).all()
    assert len(tok) == int(req.output_chunks.sum())  # the tokens that did arrive are kept


def test_requests_in_flight_when_the_load_stops_are_timed_like_the_others(server_factory, tmp_path) -> None:
    """Stopping the load must not stall the loop that times the last requests (Locust's stop() used
    to cost a 60–70 ms stall on its first inspect.stack()): the E2E of the requests that straddle the
    end sits inside the spread of the stage's own (median under its p90)."""
    server = server_factory(ttft=0.03, itl=0.005)
    out = tmp_path / "run"
    res = run_satscope("--target", server.url, "--users", "48", "--spawn-rate", "480", "--duration", "4",
                       "--output-len", "16", "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest, req, _ = _load(out)
    end = manifest["stages"][-1]["end_s"]
    ok = req[req.status == "ok"]
    inside, straddle = ok[ok.end <= end], ok[(ok.start < end) & (ok.end > end)]
    assert len(straddle) >= 20 and len(inside) > 500
    assert straddle.e2e_s.median() < np.quantile(inside.e2e_s, 0.9), (straddle.e2e_s.median(), inside.e2e_s.describe())
