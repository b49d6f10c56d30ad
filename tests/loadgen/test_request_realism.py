"""`satscope run` against the fake server with the request-realism flags and the exports: headers and
an extra body on every request (load, preflight, calibration) and never in a file; a warm-up that
hides a slow start from every figure but keeps its records; configurable percentiles; stages.csv;
``--json`` on `run` and `report`; ``--max-requests`` exact, closed loop over two workers and open loop.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import satscope_cli
from tests.loadgen.conftest import fake_server

TENANT = "tenant-secret-7f3a9c"
TRACE = "trace-secret-51be02"
EXTRA = {"temperature": 0.7, "top_p": 0.9, "vendor_field": {"mode": "fast", "ids": [1, 2]}}
SLOW_TTFT_S = 0.4  # the server's first second of load
FAST_TTFT_S = 0.02
WARMUP_S = 1.5  # covers the slow second with margin for the dispatch of the last slow request
LEVELS = [50, 90, 95, 99, 99.9]


@dataclass
class WarmRun:
    out: Path
    res: subprocess.CompletedProcess
    seen: list[dict]  # every request the server got: method, path, headers (lower-case names), body
    server_ttft: dict[str, float]  # request id -> the first-token delay the server chose



@pytest.fixture(scope="module")
def warm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmRun]:
    """One 3 s closed-loop run with the report on; the server is slow for its first second."""
    out = tmp_path_factory.mktemp("realism") / "run"
    flags = ("--record-requests", "--slow-first", "1.0", "--slow-ttft", str(SLOW_TTFT_S))
    with fake_server(ttft=FAST_TTFT_S, itl=0.01, args=flags) as server:
        res = satscope_cli(
            "run",
            "--quiet",
            "--no-probes",
            "--target",
            server.url,
            "--users",
            "2",
            "--duration",
            "3",
            "--output-len",
            "4",
            "--header",
            f"X-Tenant: {TENANT}",
            f"--header=X-Trace:{TRACE}",
            "--extra-body",
            json.dumps(EXTRA),
            "--warmup",
            str(WARMUP_S),
            "--percentiles",
            ",".join(f"{p:g}" for p in LEVELS),
            "--json",
            "--out",
            str(out),
        )
        records = server.records()
    assert res.returncode == 0, res.stderr
    ttft = {rid: r["ttft_s"] for rid, r in records["requests"].items()}
    yield WarmRun(out, res, records["seen"], ttft)


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _requests(run: WarmRun) -> tuple[dict, object, np.ndarray]:
    """run.json, requests.parquet, and which rows were dispatched in the first WARMUP_S of load."""
    manifest = json.loads((run.out / "run.json").read_text())
    req = pq.read_table(run.out / "requests.parquet").to_pandas()
    warm = (req.intended_start < manifest["stages"][0]["start_s"] + WARMUP_S).to_numpy()
    return manifest, req, warm


def test_headers_and_extra_body_reach_every_request_and_no_file(warm_run: WarmRun) -> None:
    posts = [r for r in warm_run.seen if r["method"] == "POST"]
    kinds = {
        "preflight": [r for r in posts if "x-satscope-preflight" in r["headers"]],
        "calibration": [r for r in posts if "x-satscope-calibration" in r["headers"]],
        "load": [r for r in posts if "x-request-id" in r["headers"]],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    models = [r for r in warm_run.seen if r["method"] == "GET" and r["path"] == "/v1/models"]
    for r in posts + models:
        assert (r["headers"].get("x-tenant"), r["headers"].get("x-trace")) == (TENANT, TRACE), r["path"]
    for r in posts:
        assert {k: r["body"].get(k) for k in EXTRA} == EXTRA
    for r in kinds["load"]:  # satscope's own fields are intact
        assert r["body"]["stream"] is True and r["body"]["max_tokens"] == 4 and r["body"]["prompt"]
        assert r["body"]["stream_options"] == {"include_usage": True}

    manifest = json.loads((warm_run.out / "run.json").read_text())
    assert manifest["config"]["headers"] == ["X-Tenant: ***", "X-Trace: ***"]
    assert manifest["config"]["extra_body"] == EXTRA
    assert "X-Tenant: ***" in manifest["command"] and "--header=X-Trace: ***" in manifest["command"]
    files = [p for p in warm_run.out.rglob("*") if p.is_file()]
    assert {"run.json", "requests.parquet", "summary.json", "stages.csv", "report.html"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert TENANT.encode() not in data and TRACE.encode() not in data, path.name
    assert TENANT not in warm_run.res.stdout + warm_run.res.stderr


def test_json_prints_the_summary_and_nothing_else(warm_run: WarmRun) -> None:
    assert json.loads(warm_run.res.stdout) == _summary(warm_run.out)
    assert f"run directory: {warm_run.out}" in warm_run.res.stderr  # the usual results moved to stderr


def test_warmup_leaves_the_slow_start_out_of_every_figure_and_keeps_its_records(
    warm_run: WarmRun, tmp_path: Path
) -> None:
    manifest, req, warm = _requests(warm_run)
    slow = req.request_id.map(warm_run.server_ttft).to_numpy() == SLOW_TTFT_S
    assert len(req) == len(warm_run.server_ttft)  # every request has its row, warm-up or not
    assert slow.sum() >= 2 and (req.ttft_s[slow] >= SLOW_TTFT_S).all()
    assert warm[slow].all() and (~warm).sum() >= 10

    summary = _summary(warm_run.out)
    run = summary["run"]
    assert run["warmup_s"] == WARMUP_S and run["requests_warmup"] == warm.sum()
    assert run["requests_total"] == (~warm).sum()
    end_at = manifest["stages"][0]["start_s"] - manifest["clock"]["monotonic_origin_s"] + WARMUP_S
    assert run["warmup_end_at_s"] == pytest.approx(end_at)
    assert summary["stages"][0]["start_at_s"] == pytest.approx(end_at)  # the stage starts after the warm-up
    kept = req.ttft_s[~warm & (req.status == "ok").to_numpy()].to_numpy()
    ttft = summary["percentiles"]["ttft_s"]
    assert ttft["count"] == len(kept) and ttft["max"] < SLOW_TTFT_S / 2
    assert ttft["p99"] == pytest.approx(np.quantile(kept, 0.99))
    assert summary["stages"][0]["requests"] == len(kept)
    assert summary["stages"][0]["ttft_p99_s"] < SLOW_TTFT_S / 2
    assert summary["saturation"]["ttft_p99_s"] < SLOW_TTFT_S / 2

    # the same run re-judged without a warm-up: the slow start is back in the figures
    copy = tmp_path / "run"
    shutil.copytree(warm_run.out, copy)
    res = satscope_cli("report", str(copy), "--warmup", "0", "--json")
    assert res.returncode == 0, res.stderr
    cold = json.loads(res.stdout)
    assert cold["run"]["requests_warmup"] == 0 and cold["run"]["requests_total"] == len(req)
    assert cold["percentiles"]["ttft_s"]["p99"] >= SLOW_TTFT_S * 0.9
    assert cold == _summary(copy)


def test_percentiles_reach_the_summary_and_the_stage_table(warm_run: WarmRun, tmp_path: Path) -> None:
    summary = _summary(warm_run.out)
    keys = {"count", "mean", "p50", "p90", "p95", "p99", "p99_9", "max"}
    assert summary["percentile_levels"] == LEVELS
    assert all(set(dist) == keys for dist in summary["percentiles"].values())
    _, req, warm = _requests(warm_run)
    e2e = req.e2e_s[~warm & (req.status == "ok").to_numpy()].to_numpy()
    assert summary["percentiles"]["e2e_s"]["p99_9"] == pytest.approx(np.quantile(e2e, 0.999))
    assert summary["percentiles"]["e2e_s"]["p95"] == pytest.approx(np.quantile(e2e, 0.95))
    stage = summary["stages"][0]
    assert stage["e2e_p99_9_s"] == pytest.approx(np.quantile(e2e, 0.999))  # one stage: the same requests
    assert {"ttft_p95_s", "itl_p99_9_s", "ttft_intended_p99_9_s"} <= set(stage)

    # a later report takes the run's levels unless told otherwise; p50/p90/p99 always stay
    copy = tmp_path / "run"
    shutil.copytree(warm_run.out, copy)
    res = satscope_cli("report", str(copy), "--percentiles", "75")
    assert res.returncode == 0, res.stderr
    other = _summary(copy)
    assert other["percentile_levels"] == [50, 75, 90, 99]
    assert set(other["percentiles"]["ttft_s"]) == {"count", "mean", "p50", "p75", "p90", "p99", "max"}
    assert "ttft_p75_s" in other["stages"][0] and "ttft_p95_s" not in other["stages"][0]
    assert other["run"]["requests_warmup"] == summary["run"]["requests_warmup"]  # the recorded warm-up stays


def test_stages_csv_holds_the_summarys_stages(warm_run: WarmRun) -> None:
    stages = _summary(warm_run.out)["stages"]
    with (warm_run.out / "stages.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(stages[0]) and len(rows) == len(stages) + 1
    for cells, stage in zip(rows[1:], stages, strict=True):
        for name, cell in zip(rows[0], cells, strict=True):
            value = stage[name]
            if value is None:
                assert cell == "", name
            elif isinstance(value, str):
                assert cell == value, name
            else:
                assert float(cell) == value, name  # every digit kept


@pytest.mark.parametrize(
    "load, total",
    [
        (["--users", "3", "--workers", "2"], 17),  # closed loop over two worker processes: shares 9 and 8
        (["--rate", "25"], 13),  # open loop
    ],
    ids=["closed-2-workers", "open"],
)
def test_max_requests_sends_exactly_n_then_ends_complete(tmp_path: Path, load: list[str], total: int) -> None:
    out = tmp_path / "run"
    with fake_server(ttft=0.01, itl=0.005) as server:
        res = satscope_cli(
            "run",
            "--quiet",
            "--no-probes",
            "--no-report",
            "--target",
            server.url,
            *load,
            "--duration",
            "40",
            "--output-len",
            "4",
            "--max-requests",
            str(total),
            "--out",
            str(out),
        )
        served = server.records()["served"]
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "run.json").read_text())
    req = pq.read_table(out / "requests.parquet").to_pandas()
    assert manifest["status"] == "complete" and manifest["config"]["max_requests"] == total
    assert len(req) == served == total and (req.status == "ok").all()
    # it ended once the requests were answered, long before the 40 s shape would have
    assert manifest["stages"][-1]["end_s"] - manifest["stages"][0]["start_s"] < 20
    if "--workers" in load:
        assert sorted(req.worker.value_counts()) == [8, 9]
