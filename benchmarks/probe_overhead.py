"""CPU cost of the probes process, as % of one core, against a live target (issue #5: target < 2 %).

Starts the bundled server (`satscope serve --preset tiny`) on loopback, then runs `python -m satscope.probes`
against it in several configurations one after another, and measures each probes process's CPU
time (user + system, psutil) over a steady-state window that excludes start-up imports. The
configurations, side by side in one run:

  host only           host probe alone (1 s)
  all, defaults       server scrape 0.5 s + host 1 s (+ NVML GPU 1 s where a GPU exists) + flushes
  all, 5x faster      every source at 0.1 s, to show how the cost scales with the rate

    python benchmarks/probe_overhead.py [--seconds 20] [--warmup 4] [--load]

`--load` keeps a few streaming requests going against the server so /metrics values move.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import bundled_server  # noqa: E402

# name -> (extra arguments, whether the server is scraped)
CONFIGS: dict[str, tuple[list[str], bool]] = {
    "host only": (["--no-gpu"], False),
    "all, defaults": ([], True),
    "all, 5x faster (0.1 s)": (["--interval-s", "0.1"], True),
}


def _measure(args: list[str], target: str | None, server_pid: int, seconds: float, warmup: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "satscope.probes", "--out", out, "--server-pid", str(server_pid), *args]
        if target is not None:
            cmd += ["--target", target]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ps = psutil.Process(proc.pid)
        time.sleep(warmup)  # imports (pyarrow, httpx, prometheus_client) are start-up, not sampling
        c0, t0 = ps.cpu_times(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = ps.cpu_times(), time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        rows = 0
        try:
            import pyarrow.parquet as pq

            rows = pq.read_metadata(Path(out) / "samples.parquet").num_rows
        except (OSError, ImportError):
            pass
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    return {"cpu_pct_of_core": 100.0 * cpu / (t1 - t0), "rows": rows, "exit": proc.returncode}


def _load(url: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        while not stop.is_set():
            client.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "hello " * 20, "max_tokens": 32,
                                                       "ignore_eos": True})
            stop.wait(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per configuration")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds skipped after start")
    parser.add_argument("--load", action="store_true", help="keep light load on the server")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {sys.platform}; window {args.seconds:.0f} s per configuration")
    with bundled_server("--preset", "tiny", "--torch-threads", "1") as server:
        stop = threading.Event()
        loader = threading.Thread(target=_load, args=(server.url, stop), daemon=True)
        if args.load:
            loader.start()
        results = {}
        for name, (extra, scrape) in CONFIGS.items():
            target = server.url if scrape else None
            results[name] = _measure(extra, target, server.proc.pid, args.seconds, args.warmup)
            r = results[name]
            print(f"{name:26s} {r['cpu_pct_of_core']:6.2f} % of one core   {r['rows']:6d} rows   exit {r['exit']}")
        stop.set()
    base = results["all, defaults"]["cpu_pct_of_core"]
    verdict = "PASS" if base < 2.0 else "FAIL"
    print(f"all probes at default rates: {base:.2f} % of one core (target < 2 %): {verdict}")
    return 0 if base < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
