"""Records streamed out of the timing process: the record writer's files, the bounded recent store,
and a real run on loopback whose requests.parquet is read while it goes and whose writer dies with it."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path

import msgpack
import psutil
import pyarrow.parquet as pq

from satscope.loadgen._record_writer import pack_frame
from satscope.loadgen.config import LoadgenConfig
from satscope.loadgen.dead_target import DeadTargetWatch
from satscope.loadgen.recent import RecentRecords
from satscope.loadgen.records import RequestRecord, RunStore, WorkerBuffer
from satscope.loadgen.shapes import Shape, Stage
from satscope.loadgen.workload import LengthDist, WorkloadConfig
from tests.loadgen.conftest import ROOT, fake_server

SHAPE = Shape([Stage("low", 10, 2), Stage("ramp", 10, 2, profile="linear", load_end=12)])


def _record(rid: str, worker: str, t: float, chunks: int, status: str, rng: random.Random) -> RequestRecord:
    first = t + 0.1 if chunks else None
    return RequestRecord(
        rid, worker, "chat", True, t, t + 0.001, first, t + 1.0, status, 200 if status == "ok" else None,
        None if status == "ok" else "boom", rng.choice([None, 5]), rng.choice([None, chunks, chunks + 1]), chunks,
        rng.choice([None, 7]), 3, rng.choice([None, 2]), rng.random() < 0.1, first, first, 0, None,
        rng.choice([None, "s1"]), rng.choice([None, 2]),
    )  # fmt: skip


def _batches(n_batches: int, seed: int = 1) -> list[tuple[str, dict]]:
    """Batches of two workers as the master receives them: odd records, Nones, samples."""
    rng = random.Random(seed)
    bufs = {"w0": WorkerBuffer(), "w1": WorkerBuffer()}
    out, n = [], 0
    for b in range(n_batches):
        for worker, buf in bufs.items():
            for _ in range(rng.randrange(1, 30)):
                n += 1
                t = 98 + rng.random() * 25
                chunks = rng.randrange(0, 5)
                status = rng.choice(["ok", "ok", "ok", "http_error", "dropped"])
                buf.add(_record(f"{worker}-{n:06d}", worker, t, chunks, status, rng), array("d", [t + 0.1] * chunks))
                buf.add_sample(t, "loadgen_cpu", rng.random(), f"worker={worker}")
            batch = buf.drain(final=b == n_batches - 1)
            out.append((worker, msgpack.unpackb(msgpack.packb(batch))))
    return out


def _until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


def _rows(path: Path) -> int:
    return pq.read_table(path).num_rows if path.exists() else -1


def test_the_writer_publishes_whole_batches_as_they_come_and_ends_with_the_in_memory_tables(tmp_path: Path) -> None:
    batches = _batches(6)
    cmd = [sys.executable, "-m", "satscope.loadgen._record_writer", "--run-dir", str(tmp_path), "--interval-s", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(pack_frame({"kind": "shape", "shape": SHAPE.to_json(), "origin_s": 100.0}))
    sent = 0
    for worker, batch in batches[:2]:  # one at a time: each publish holds exactly the batches sent
        proc.stdin.write(pack_frame({"kind": "batch", "worker": worker, "batch": batch}))
        proc.stdin.flush()
        sent += len(batch["token_counts"])
        _until(lambda n=sent: _rows(tmp_path / "requests.parquet") == n, 30, f"{sent} rows published")
    for worker, batch in batches[2:]:
        proc.stdin.write(pack_frame({"kind": "batch", "worker": worker, "batch": batch}))
    proc.stdin.close()  # the end of the run
    out = json.loads(proc.stdout.read())
    assert proc.wait(30) == 0
    store = RunStore()
    for worker, batch in batches:
        store.extend(worker, batch)
    expected = store.tables(SHAPE, 100.0)
    assert out["records_written"] == expected[0].num_rows == sum(len(b["token_counts"]) for _, b in batches)
    for name, table in zip(("requests", "tokens", "loadgen"), expected, strict=True):
        written = pq.read_table(tmp_path / f"{name}.parquet")
        assert written.schema.equals(table.schema) and written.equals(table), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loadgen.parquet", "requests.parquet", "tokens.parquet"]


def test_recent_records_keep_a_window_count_the_whole_run_and_the_dead_watch_reads_across_pruning() -> None:
    store, rng = RecentRecords(), random.Random(3)
    buf = WorkerBuffer()
    for i in range(100):  # one request ending each second; the last 10 refused
        status = "ok" if i < 90 else "connection_error"
        buf.add(_record(f"w0-{i:06d}", "w0", float(i), 1, status, rng), array("d", [i + 0.1]))
    watch = DeadTargetWatch(after_s=5.0)
    batch = buf.drain()
    half = {**batch, "cols": {k: v[:85] for k, v in batch["cols"].items()}, "token_counts": batch["token_counts"][:85]}
    rest = {**batch, "cols": {k: v[85:] for k, v in batch["cols"].items()}, "token_counts": batch["token_counts"][85:]}
    store.extend("w0", half)
    assert not watch.update(store, now_s=86.0)
    store.prune(before_s=80.0)  # end = start + 1: rows 79.. stay
    assert len(store) == 85 - 79 and store.first_row == 79 and store.cols["request_id"][0] == "w0-000079"
    store.extend("w0", rest)
    assert watch.update(store, now_s=100.0) and watch.lost_s == 90.001  # the rows after the pruned ones, each once
    store.prune(before_s=95.0)
    assert store.cols["end"][0] >= 95.0 and store.first_row + len(store) == 100
    assert (store.requests, store.errors, store.sent) == (100, 10, 100)


def _config(run_dir: Path, url: str, duration_s: float) -> Path:
    workload = WorkloadConfig(input_len=LengthDist("fixed", 8), output_len=LengthDist("fixed", 16)).to_json()
    cfg = LoadgenConfig(
        target_url=url, run_dir=str(run_dir), shape=[Stage("s", duration_s, 6).to_json()], workload=workload,
        model="m", flush_interval_s=0.5, locust_csv=False, stop_timeout_s=5.0,
    )  # fmt: skip
    path = run_dir.parent / "loadgen_config.json"
    run_dir.mkdir(parents=True)
    cfg.save(path)
    return path


def _loadgen(config: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "satscope.loadgen.runner", "--role", "local", "--config", str(config), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_publishes_a_readable_prefix_as_it_goes_and_holds_only_recent_records(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with fake_server(ttft=0.005, itl=0.002) as server:
        proc = _loadgen(_config(run_dir, server.url, 10.0), "--keep-recent-s", "2")
        requests = run_dir / "requests.parquet"
        seen: list[list[str]] = []
        while proc.poll() is None:  # read while the run goes: every read a valid file
            if requests.exists():
                # opened once: pq.read_table(path) opens it twice (schema, then data) and may meet two
                # publishes (docs/run-format.md, atomic writes)
                with requests.open("rb") as f:
                    ids = pq.read_table(f, columns=["request_id"]).column(0).to_pylist()
                if ids and (not seen or len(ids) != len(seen[-1])):
                    seen.append(ids)
            time.sleep(0.2)
        out, err = proc.communicate()
    assert proc.returncode == 0, err
    final = next(json.loads(line[9:]) for line in out.splitlines() if '"kind": "final"' in line)
    ids = pq.read_table(requests, columns=["request_id"]).column(0).to_pylist()
    assert final["records_written"] == len(ids) == sum(final["received"].values()) > 200
    assert len(seen) >= 3, [len(s) for s in seen]  # published as the run went, not only at its end
    for earlier in seen:  # each mid-run file: the first records of the final one, in order, none missing
        assert ids[: len(earlier)] == earlier
    # the load generator held the last seconds of records at the end, not the run's
    assert final["recent_records"] < len(ids) / 2, (final["recent_records"], len(ids))
    assert not list(run_dir.glob(".*"))  # the writer's logs are gone


def test_the_writer_outlives_neither_signals_nor_its_killed_parent_and_keeps_what_it_got(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with fake_server(ttft=0.005, itl=0.002) as server:
        proc = _loadgen(_config(run_dir, server.url, 60.0))
        try:
            assert proc.stdout is not None
            forwarded = 0  # records the load generator had sent on to the writer, by its progress lines
            while forwarded < 100:
                line = proc.stdout.readline()
                assert line, "the load generator ended early"
                if line.startswith("SATSCOPE ") and '"kind": "progress"' in line:
                    forwarded = json.loads(line[9:])["requests"]
            me = psutil.Process(proc.pid)
            (writer,) = [c for c in me.children() if "satscope.loadgen._record_writer" in " ".join(c.cmdline())]
            writer.send_signal(signal.SIGTERM)  # a signal to the group is the load generator's to act on
            time.sleep(0.5)
            assert writer.is_running()
            proc.kill()
            proc.wait(10)
            killed = time.monotonic()
            writer.wait(10)  # psutil.TimeoutExpired if it outlives its parent
            assert time.monotonic() - killed < 10
        finally:
            if proc.poll() is None:
                proc.kill()
    table = pq.read_table(run_dir / "requests.parquet")  # valid, with everything it was sent
    assert table.num_rows >= forwarded
    assert not list(run_dir.glob(".*"))
