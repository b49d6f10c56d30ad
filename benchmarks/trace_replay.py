"""How closely does a trace replay keep to the trace's schedule? Dispatch lateness at 10, 50, 200 req/s.

Writes a Mooncake-style trace of Poisson arrivals (short prompts and answers, so the deterministic
server is not the limit), replays it with ``satscope run --dataset-format mooncake`` against
``tests/fake_llm_server.py`` at each rate (the rate set through ``--speedup``), and reads from the
run's ``summary.json`` (``replay`` block) the dispatch lateness, ``start − intended_start``: median,
p99, max, and how many dispatches were over the 5 ms late threshold. Prints a Markdown table.

    .venv/bin/python benchmarks/trace_replay.py --seconds 10 --rates 10,50,200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_http_ok  # noqa: E402

TRACE_RATE = 1.0  # requests per second of trace time; --speedup R replays it at R req/s


def write_trace(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    t_ms = 0.0
    with path.open("w") as fh:
        for _ in range(n):
            t_ms += rng.expovariate(TRACE_RATE) * 1000.0
            blocks = [rng.randrange(8), 10_000 + rng.randrange(1_000_000)]
            fh.write(json.dumps({"timestamp": round(t_ms), "input_length": 48, "output_length": 8,
                                 "hash_ids": blocks}) + "\n")  # fmt: skip


def replay(url: str, trace: Path, rate: float, out: Path) -> dict:
    cmd = [
        sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--target", url, "--dataset", str(trace),
        "--dataset-format", "mooncake", "--speedup", f"{rate / TRACE_RATE:g}", "--trace-block-tokens", "24",
        "--out", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    r = summary["replay"]
    lat = r["dispatch_lateness_s"]
    return {
        "rate": rate,
        "requests": r["requests"],
        "p50_ms": lat["p50"] * 1e3,
        "p99_ms": lat["p99"] * 1e3,
        "max_ms": lat["max"] * 1e3,
        "late": r["late_dispatches"],
        "errors": summary["run"]["requests_failed"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="replay length at each rate")
    ap.add_argument("--rates", default="10,50,200", help="replay rates in requests/s")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm_server", "--port", str(port), "--ttft", "0.005", "--itl", "0.002"],
        cwd=ROOT,
    )
    rows = []
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
        with tempfile.TemporaryDirectory() as tmp:
            for rate in rates:
                trace = Path(tmp) / f"trace-{rate:g}.jsonl"
                write_trace(trace, n=max(10, int(rate * args.seconds)))
                rows.append(replay(f"http://127.0.0.1:{port}", trace, rate, Path(tmp) / f"run-{rate:g}"))
    finally:
        server.terminate()
        server.wait(10)
    load = os.getloadavg()[0]
    print(f"trace replay, {args.seconds:g} s per rate, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {load:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
    print("| req/s | requests | lateness p50 | p99 | max | over 5 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rate']:g} | {r['requests']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.2f} ms "
              f"| {r['late']} | {r['errors']} |")  # fmt: skip


if __name__ == "__main__":
    main()
