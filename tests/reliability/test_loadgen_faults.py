"""The load generator under faults: hostile streams, a target restarted mid-run, SIGTERM/SIGINT, secrets.

Everything runs as real processes on loopback: `satscope run` (Locust in its own process), the
hostile server (tests/reliability/hostile_server.py) or the bundled server. Covered in
tests/loadgen already, so not repeated: the target SIGKILLed for good, bad_json / no_done /
truncate / HTTP 500 / in-stream errors from the fake server, Ctrl-C on a run, the command's key
redaction, the one-line errors of most bad flags.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from satscope.reports import build_report
from tests.helpers import free_port
from tests.reliability._targets import hostile_target, satscope_run, start_serve, stop

# what each hostile mode must become in requests.parquet
EXPECTED = {
    "normal": "ok",
    "garbage": "malformed",
    "truncated_json": "malformed",
    "bad_delta": "malformed",
    "no_done": "malformed",
    "stall": "timeout",
    "huge_line": "malformed",
    "flood": "ok",  # more chunks than asked: counted, and flagged as token_mismatch
    "reset": "disconnected",
}


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc, 5)
        pytest.fail(f"satscope run did not finish within {timeout_s} s")
    return proc.returncode, err


def _load(out: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    manifest = json.loads((out / "run.json").read_text())
    return manifest, pd.read_parquet(out / "requests.parquet"), pd.read_parquet(out / "tokens.parquet")


@pytest.mark.slow
def test_each_malformed_stream_is_recorded_as_its_error_kind_without_a_hang(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with hostile_target(",".join(EXPECTED), huge_mib=64) as target:
        started = time.monotonic()
        args = ["--no-probes", "--no-report", "--target", target.url, "--endpoint", "chat", "--users", "3"]
        proc = satscope_run(*args, "--duration", "6", "--timeout", "3", "--output-len", "4", "--out", str(out))
        code, err = _finish(proc, 90)
        elapsed = time.monotonic() - started
        # satscope run's own calibration request carries no X-Request-Id: not a load request
        seen = {rid: r for rid, r in target.records().items() if not rid.startswith("anon-")}
    assert code == 0, err
    assert elapsed < 40, f"the run took {elapsed:.0f} s for 6 s of load"
    manifest, req, _ = _load(out)
    assert manifest["status"] == "complete"
    assert set(req.request_id) == set(seen)  # every request the target saw has its record, and no other
    req["mode"] = req.request_id.map(lambda rid: seen[rid]["mode"])
    assert set(req["mode"]) == set(EXPECTED), "every mode was exercised"
    for mode, status in EXPECTED.items():
        rows = req[req["mode"] == mode]
        assert (rows.status == status).all(), (mode, rows[["status", "error"]].drop_duplicates().to_dict("records"))
        if status != "ok":
            assert rows.error.notna().all() and (rows.error.str.len() > 0).all(), mode
    flood = req[req["mode"] == "flood"]
    assert flood.token_mismatch.all() and (flood.output_chunks == 20_000).all()
    assert req[req["mode"] == "huge_line"].error.str.contains("longer than").all()


@pytest.mark.slow
def test_a_huge_non_streamed_body_is_refused_not_buffered(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with hostile_target("json,huge_body", huge_mib=200) as target:
        args = ["--no-probes", "--no-report", "--target", target.url, "--no-stream", "--users", "2"]
        proc = satscope_run(*args, "--duration", "4", "--timeout", "20", "--output-len", "4", "--out", str(out))
        code, err = _finish(proc, 90)
        seen = {rid: r for rid, r in target.records().items() if not rid.startswith("anon-")}
    assert code == 0, err
    _, req, _ = _load(out)
    req["mode"] = req.request_id.map(lambda rid: seen[rid]["mode"])
    assert set(req["mode"]) == {"json", "huge_body"}
    assert (req[req["mode"] == "json"].status == "ok").all()
    huge = req[req["mode"] == "huge_body"]
    assert (huge.status == "malformed").all() and huge.error.str.contains("larger than 67108864 bytes").all()


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s} s"
        time.sleep(0.1)


def _served(url: str) -> float:
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("satscope_requests_total{"))


@pytest.mark.slow
def test_target_killed_and_restarted_mid_run_load_resumes_and_rates_stay_non_negative(tmp_path: Path) -> None:
    out = tmp_path / "run"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server, _ = start_serve(port, "--log-level", "warning")
    restarted: subprocess.Popen | None = None
    try:
        args = ["--no-report", "--no-gpu", "--target", url, "--users", "2", "--output-len", "8", "--input-len", "8"]
        # (the report is built below, in this process, to look inside it)
        proc = satscope_run(*args, "--duration", "20", "--timeout", "10", "--out", str(out))
        _wait(lambda: _served(url) >= 10, 60, "10 requests served")
        server.kill()  # SIGKILL: no drain, streams in flight are cut
        killed_at = time.monotonic()
        server.wait()
        time.sleep(1.0)  # an outage the records must show
        restarted, _ = start_serve(port, "--log-level", "warning")
        back_at = time.monotonic()
        code, err = _finish(proc, 120)
    finally:
        stop(server)
        if restarted is not None:
            stop(restarted)
    assert code == 0, err
    manifest, req, _ = _load(out)
    assert manifest["status"] == "complete"
    # record times and killed_at / back_at are all on the machine's one monotonic clock
    failed = req[req.status != "ok"]
    assert len(failed) > 0 and set(failed.status) <= {"disconnected", "connection_error"}, failed.status.unique()
    assert failed.error.notna().all()
    assert ((failed.start >= killed_at - 5) & (failed.start <= back_at + 1)).all()  # only around the outage
    assert (req[req.status == "ok"].start > back_at).sum() >= 3, "the load resumed after the restart"
    assert manifest["validity"]["target_errors"] == len(failed)
    samples = pd.read_parquet(out / "samples.parquet")
    rates = samples[samples.metric.str.endswith("_per_s")]
    assert len(rates) > 0 and (rates.value >= 0).all(), rates[rates.value < 0].head().to_dict("records")
    # The report builds and its timeline shows the outage: errors only around the kill.
    html = build_report(out).html_path.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="satscope-data">(.*?)</script>', html, re.S)[1])
    timeline = next(f for f in data["figures"] if f["id"] == "fig-timeline")
    errors = next(t for t in timeline["data"] if t["name"] == "error rate")
    origin = manifest["clock"]["monotonic_origin_s"]
    bad = [x for x, y in zip(errors["x"], errors["y"], strict=True) if y]
    assert bad and all(killed_at - origin - 6 <= x <= back_at - origin + 2 for x in bad), (bad, killed_at - origin)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_leaves_readable_parquet_and_says_so(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    with hostile_target("normal") as target:
        args = ["--no-probes", "--no-report", "--target", target.url, "--users", "2", "--output-len", "4"]
        proc = satscope_run(*args, "--duration", "60", "--out", str(out))
        _wait(lambda: len(target.records()) >= 20, 60, "20 requests")
        sent_at = time.monotonic()
        proc.send_signal(signum)
        code, err = _finish(proc, 60)
    assert time.monotonic() - sent_at < 30
    assert code == 1, err
    manifest, req, tok = _load(out)
    assert manifest["status"] == "interrupted" and manifest["validity"]["interrupted"] is True
    assert len(req) >= 20 and len(tok) == int(req.output_chunks.sum())
    assert manifest["end_s"] is not None and manifest["end_s"] - manifest["start_s"] < 45


KEY = "sk-reliability-0c6f2a9e"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_api_key_reaches_only_the_target_and_never_the_run_directory(tmp_path: Path, how: str) -> None:
    out = tmp_path / "run"
    with hostile_target("normal") as target:
        args = ["--no-report", "--no-gpu", "--target", target.url, "--users", "1", "--duration", "3"]
        args += ["--output-len", "2", "--out", str(out)]
        env = {"SATSCOPE_API_KEY": KEY} if how == "env" else {}
        proc = satscope_run(*args, *(["--api-key", KEY] if how == "flag" else []), env=env)
        code, err = _finish(proc, 60)
        seen = target.records()
    assert code == 0, err
    assert seen and all(r["authorization"] == f"Bearer {KEY}" for r in seen.values())
    assert all(r["host"] == target.url.removeprefix("http://") for r in seen.values())
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"run.json", "requests.parquet"} <= {p.name for p in files}
    for path in files:
        assert KEY.encode() not in path.read_bytes(), f"the API key is in {path.name}"
    assert KEY not in err


@pytest.mark.parametrize(
    "target",
    [
        "ftp://127.0.0.1:21",
        "127.0.0.1:8000",
        "file:///etc/passwd",
        "http://",
        "http://127.0.0.1:notaport",
        "http://user:sk-secret@127.0.0.1:8000",
    ],
)
def test_target_must_be_an_http_url(tmp_path: Path, target: str) -> None:
    proc = satscope_run("--no-probes", "--no-report", "--target", target, "--users", "1", "--out", str(tmp_path / "r"))
    code, err = _finish(proc, 60)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "is not an http(s) URL" in lines[0] or "credentials in the URL" in lines[0]
    assert "sk-secret" not in err
    assert not (tmp_path / "r").exists()
