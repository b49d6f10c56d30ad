"""Load-generator memory and loop lag over a long run at a high token rate (issue 16, part 4).

Starts the deterministic server (``tests/fake_llm_server.py``: first chunk after ``--ttft``, then
one every ``--itl``), runs ``satscope run`` (closed loop, ``--users`` streams) against it for
``--duration`` seconds, and meanwhile:
- samples every second the RSS of the load-generator process (``satscope.loadgen.runner``) and, where there
  is one, of the record writer (``satscope.loadgen._record_writer``);
- polls the run's three Parquet files every 20 ms and notes each time one is replaced (published).

At the end it reads the loop-lag samples the load generator recorded (``loadgen.parquet``,
``loadgen_loop_lag_s``: every 0.5 s, how late the gevent loop woke) and splits them into those
taken while a file was being written (within 1.5 s before a publish up to 0.2 s after it: a
flush builds the tables, then writes them) and the others. RSS growth per minute is the slope of a
line fitted to the RSS after ``--warmup`` seconds (default 70: the load generator keeps the last
60 s of records for its live figures, so its memory fills for that long, then stays).

``--code DIR`` runs the satscope found in DIR (same virtualenv) instead of this checkout's, to
compare with an older version::

    mkdir /tmp/before && git archive HEAD | tar -x -C /tmp/before
    .venv/bin/python benchmarks/loadgen_memory.py --duration 120 --code /tmp/before
    .venv/bin/python benchmarks/loadgen_memory.py --duration 120

Prints a JSON summary and one Markdown table row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_http_ok  # noqa: E402

FILES = ("requests.parquet", "tokens.parquet", "loadgen.parquet")
WRITE_BEFORE_S, WRITE_AFTER_S = 1.5, 0.2


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load (default 120)")
    p.add_argument("--users", type=int, default=32, help="closed-loop streams (default 32)")
    p.add_argument("--itl", type=float, default=0.002, help="server seconds between chunks (default 0.002)")
    p.add_argument("--ttft", type=float, default=0.01, help="server seconds to the first chunk (default 0.01)")
    p.add_argument("--output-len", type=int, default=256, help="chunks per request (default 256)")
    p.add_argument("--warmup", type=float, default=70.0, help="seconds before RSS growth is fitted (default 70)")
    p.add_argument("--code", type=Path, default=ROOT, help="the satscope checkout to run (default: this one)")
    p.add_argument("--out", type=Path, default=None, help="where the run directory goes (default: a temp dir)")
    args = p.parse_args()
    if not (args.duration > 0 and args.users > 0 and args.itl > 0 and args.output_len > 0):
        p.error("--duration, --users, --itl and --output-len must be > 0")
    return args


class _Watch:
    """RSS of the load generator and the record writer every second; Parquet publishes every 20 ms."""

    def __init__(self, run: subprocess.Popen, run_dir: Path) -> None:
        self.run, self.run_dir = psutil.Process(run.pid), run_dir
        self.rss: list[tuple[float, float, float, float]] = []  # (t, loadgen MiB, writer MiB, writer anonymous MiB)
        self.publishes: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._sample_rss, self._poll_files)]
        for t in self._threads:
            t.start()

    def _procs(self) -> tuple[psutil.Process | None, psutil.Process | None]:
        loadgen = writer = None
        try:
            for child in self.run.children(recursive=True):
                cmd = " ".join(child.cmdline())
                if "satscope.loadgen.runner" in cmd:
                    loadgen = child
                elif "satscope.loadgen._record_writer" in cmd:
                    writer = child
        except psutil.Error:
            pass
        return loadgen, writer

    def _sample_rss(self) -> None:
        while not self._stop.wait(1.0):
            loadgen, writer = self._procs()
            try:
                info = [p.memory_info() if p else None for p in (loadgen, writer)]
            except psutil.Error:
                continue
            mib = [float("nan") if i is None else i.rss / 2**20 for i in info]
            # the writer reads its logs memory-mapped: those pages count in its RSS but are the page cache's
            anon = float("nan") if info[1] is None else (info[1].rss - info[1].shared) / 2**20
            if loadgen is not None:
                self.rss.append((time.monotonic(), mib[0], mib[1], anon))

    def _poll_files(self) -> None:
        seen: dict[str, int] = {}
        while not self._stop.wait(0.02):
            for name in FILES:
                try:
                    mtime = os.stat(self.run_dir / name).st_mtime_ns
                except OSError:
                    continue
                if seen.get(name) != mtime:
                    seen[name] = mtime
                    self.publishes.append(time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    q = np.quantile(values, [0.5, 0.99]) * 1000
    return {
        "n": len(values),
        "p50_ms": round(q[0], 2),
        "p99_ms": round(q[1], 2),
        "max_ms": round(values.max() * 1000, 2),
    }


def measure(args: argparse.Namespace, out: Path) -> dict:
    port = free_port()
    server_cmd = [sys.executable, "-m", "tests.fake_llm_server", "--port", str(port),
                  "--ttft", str(args.ttft), "--itl", str(args.itl)]  # fmt: skip
    server = subprocess.Popen(server_cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 20, server)
        cmd = [sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--no-report",
               "--target", f"http://127.0.0.1:{port}", "--users", str(args.users), "--duration", str(args.duration),
               "--output-len", str(args.output_len), "--input-len", "16", "--out", str(out)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(args.code)}
        run = subprocess.Popen(cmd, cwd=args.code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        watch = _Watch(run, out)
        _, err = run.communicate(timeout=args.duration + 600)
        watch.stop()
        if run.returncode != 0:
            raise SystemExit(f"satscope run failed ({run.returncode}): {err.decode()[-2000:]}")
    finally:
        server.terminate()
        server.wait(10)
    manifest = json.loads((out / "run.json").read_text())
    stage = manifest["stages"][0]
    tokens = pq.read_metadata(out / "tokens.parquet").num_rows
    requests = pq.read_metadata(out / "requests.parquet").num_rows
    lg = pq.read_table(out / "loadgen.parquet").to_pandas()
    lag = lg[(lg.metric == "loadgen_loop_lag_s") & (lg.t >= stage["start_s"]) & (lg.t <= stage["end_s"])]
    pubs = np.array([t for t in watch.publishes if stage["start_s"] <= t <= stage["end_s"] + WRITE_AFTER_S])
    t = lag.t.to_numpy()
    during = np.zeros(len(t), dtype=bool)
    for p in pubs:
        during |= (t >= p - WRITE_BEFORE_S) & (t <= p + WRITE_AFTER_S)
    values = lag.value.to_numpy()
    rss = np.array([r for r in watch.rss if stage["start_s"] <= r[0] <= stage["end_s"]])
    warm = rss[rss[:, 0] >= stage["start_s"] + min(args.warmup, 0.5 * args.duration)]
    slope = np.polyfit(warm[:, 0], warm[:, 1], 1)[0] * 60 if len(warm) > 2 else float("nan")
    writer_slope = (
        np.polyfit(warm[:, 0], warm[:, 2], 1)[0] * 60 if len(warm) > 2 and not np.isnan(warm[:, 2]).any() else None
    )
    return {
        "code": str(args.code),
        "duration_s": args.duration,
        "users": args.users,
        "requests": requests,
        "tokens_per_s": round(tokens / args.duration),
        "loadgen_rss_mib": {
            "start": round(rss[0, 1], 1),
            "end": round(rss[-1, 1], 1),
            "max": round(rss[:, 1].max(), 1),
        },
        "loadgen_rss_growth_mib_per_min": round(slope, 2),
        "writer_rss_mib_max": None if np.isnan(rss[:, 2]).all() else round(np.nanmax(rss[:, 2]), 1),
        "writer_rss_growth_mib_per_min": None if writer_slope is None else round(writer_slope, 2),
        "writer_anonymous_mib_max": None if np.isnan(rss[:, 3]).all() else round(np.nanmax(rss[:, 3]), 1),
        "publishes": len(pubs),
        "loop_lag_all": _quantiles(values),
        "loop_lag_during_writes": _quantiles(values[during]),
        "loop_lag_between_writes": _quantiles(values[~during]),
        "loadgen_cpu_p50": round(float(lg[lg.metric == "loadgen_cpu"].value.median()), 3),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def main() -> None:
    args = _parse()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args, args.out or Path(tmp) / "run")
    print(json.dumps(r, indent=2))
    d, b = r["loop_lag_during_writes"], r["loop_lag_between_writes"]
    print("| code | tok/s | loadgen RSS start → end (MiB) | growth MiB/min | writer RSS max | "
          "lag p99 during / between writes (ms) | lag max during / between (ms) |")  # fmt: skip
    print(f"| {r['code']} | {r['tokens_per_s']} | {r['loadgen_rss_mib']['start']} → {r['loadgen_rss_mib']['end']} | "
          f"{r['loadgen_rss_growth_mib_per_min']} | {r['writer_rss_mib_max']} | {d['p99_ms']} / {b['p99_ms']} | "
          f"{d['max_ms']} / {b['max_ms']} |")  # fmt: skip


if __name__ == "__main__":
    main()
