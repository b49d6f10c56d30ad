"""Records, batches, tables, the load-generator verdict and redaction, in-process (no Locust)."""

from __future__ import annotations

from array import array

import msgpack
import pyarrow.parquet as pq
import pytest

from satscope._manifest import redact_command
from satscope.loadgen.output import progress, write_run_files
from satscope.loadgen.recent import RecentRecords
from satscope.loadgen.records import RequestRecord, RunStore, WorkerBuffer
from satscope.loadgen.saturation import loadgen_figures
from satscope.loadgen.shapes import Shape, Stage
from satscope.run_format import requests_schema, samples_schema, tokens_schema

SHAPE = Shape([Stage("low", 10, 2), Stage("ramp", 10, 2, profile="linear", load_end=12)])


def _row(
    rid: str, intended: float, first: float | None, status: str = "ok", usage: int | None = 3, chunks: int = 3
) -> RequestRecord:
    return RequestRecord(
        rid,
        "w0",
        "completions",
        True,
        intended,
        intended + 0.001,
        first,
        intended + 1.0,
        status,
        200 if status == "ok" else None,
        None if status == "ok" else "boom",
        5,
        usage,
        chunks,
        5,
        3,
        None,
        False,
    )


def _batch() -> dict:
    buf = WorkerBuffer()
    buf.add(_row("w0-000001", 101.0, 101.2), array("d", [101.2, 101.3, 101.4]))
    buf.add(_row("w0-000002", 115.0, 115.5, usage=4), array("d", [115.5, 115.6, 115.7]))
    buf.add(_row("w0-000003", 125.0, None, status="connection_error", usage=None, chunks=0), array("d"))
    buf.add_sample(101.0, "loadgen_cpu", 0.5, "worker=w0")
    return msgpack.unpackb(msgpack.packb(buf.drain(clock_offset_s=0.0, final=True)))  # survives the transport


def _store() -> RunStore:
    store = RunStore()
    store.extend("w0", _batch())
    return store


def test_tables_follow_the_contract_and_label_stages() -> None:
    requests, tokens, loadgen = _store().tables(SHAPE, shape_origin_s=100.0)
    assert requests.schema.equals(requests_schema()) and tokens.schema.equals(tokens_schema())
    assert loadgen.schema.equals(samples_schema())
    r = requests.to_pydict()
    assert r["stage"] == ["low", "ramp", "ramp"]  # the last one is after the end: the last stage
    assert r["offered_load"] == [2.0, pytest.approx(2 + 10 * 0.5), 12.0]  # after the end: the last load
    assert r["token_mismatch"] == [False, True, False]
    assert r["first_token"][2] is None and r["ttft_s"][2] is None and r["ttft_s"][0] == pytest.approx(0.199)
    t = tokens.to_pydict()
    assert t["request_id"] == ["w0-000001"] * 3 + ["w0-000002"] * 3 and t["index"] == [0, 1, 2] * 2


def test_worker_offsets_shift_every_time() -> None:
    buf = WorkerBuffer()
    buf.add(_row("w1-000001", 10.0, 10.5), array("d", [10.5, 10.6, 10.7]))
    buf.add_sample(10.0, "loadgen_cpu", 0.1, "worker=w1")
    batch = buf.drain(clock_offset_s=2.5)
    assert batch["cols"]["start"] == [12.501] and batch["samples"][0][0] == 12.5
    assert array("d", batch["token_times"]).tolist() == pytest.approx([13.0, 13.1, 13.2])
    assert buf.drain()["cols"]["request_id"] == []  # drained


def test_record_counting_finds_missing_batches() -> None:
    store = RecentRecords()
    buf = WorkerBuffer()
    buf.add(_row("a", 1, 1.1), array("d", [1.1]))
    store.extend("w0", buf.drain())
    buf.add(_row("b", 2, 2.1), array("d", [2.1]))
    lost = buf.drain()  # never arrives
    assert lost["total_requests"] == 2
    store.extend("w0", buf.drain(final=True))
    assert store.announced == {"w0": 2} and store.missing() == {"w0": 1}


def test_write_and_progress(tmp_path) -> None:
    assert write_run_files(tmp_path, _store(), SHAPE, 100.0) == 3
    assert pq.read_table(tmp_path / "tokens.parquet").num_rows == 6
    assert not list(tmp_path.glob("*.tmp"))
    recent = RecentRecords()
    recent.extend("w0", _batch())
    p = progress(recent, now_s=126.0, window_s=5.0)
    assert p["requests"] == 3 and p["errors"] == 1 and p["req_per_s"] == pytest.approx(0.2)


def test_loadgen_figures_are_per_metric_quantiles_and_maxima() -> None:
    metric = ["loadgen_cpu"] * 10 + ["loadgen_loop_lag_s"] * 10 + ["loadgen_in_flight"] * 3
    value = [i / 10 for i in range(10)] + [i / 1000 for i in range(10)] + [4.0, 9.0, 2.0]
    figs = loadgen_figures([0.0] * len(metric), metric, value)
    assert figs["cpu_max"] == pytest.approx(0.9) and figs["cpu_p90"] == pytest.approx(0.81)  # linear, as reports
    assert figs["loop_lag_p90_s"] == pytest.approx(0.0081) and figs["max_in_flight"] == 9.0
    assert loadgen_figures([], [], []) == dict.fromkeys(figs)


def test_api_key_is_redacted() -> None:
    argv = ["satscope", "run", "--api-key", "sk-1", "--target", "http://x", "--api-key=sk-2", "--model", "has-sk-1"]
    assert redact_command(argv, "sk-1") == [
        "satscope",
        "run",
        "--api-key",
        "***",
        "--target",
        "http://x",
        "--api-key=***",
        "--model",
        "has-***",
    ]


def test_progress_line() -> None:
    from satscope._live import progress_line

    p = {"stage": "step-2", "load": 8, "users": 8, "requests": 40, "errors": 2, "req_per_s": 4.0,
         "tokens_per_s": 512.0, "ttft_p50_s": 0.041, "ttft_p99_s": None}  # fmt: skip
    line = progress_line(p, SHAPE)
    assert line.startswith("stage step-2 · 8 users · 4.0 req/s · 512 tok/s · TTFT p50 41 ms p99 –")
    assert line.endswith("40 requests, 2 errors") and progress_line({}, SHAPE) == "starting…"
    open_shape = Shape([Stage("s", 5, 3.5, kind="open")])
    assert "3.5 req/s offered" in progress_line({**p, "load": 3.5}, open_shape)
