"""What a short `satscope run` costs beyond its load: start-up before the first request, and the
wait, the files and the report after the last.

Starts the deterministic server (``tests/fake_llm_server.py``), then runs ``satscope run --users 2
--duration D`` against it ``--repeat`` times and splits each run's wall time on the one monotonic
clock every satscope process shares (run.json's stage times are on it):

- *before*: from launching the command to the shape's start (the CLI's imports, the target's
  health, preflight and calibration requests, starting the probes and the load generator);
- *load*: the shape itself (``--duration``);
- *after*: from the shape's end to the command's exit (the requests in flight, the load
  generator's and record writer's exit, the manifest and the report).

``--code DIR`` runs the satscope found in DIR (same virtualenv), to compare with an older version::

    mkdir /tmp/before && git archive HEAD | tar -x -C /tmp/before
    .venv/bin/python benchmarks/run_overhead.py --code /tmp/before
    .venv/bin/python benchmarks/run_overhead.py

Prints one Markdown table row per run and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_http_ok  # noqa: E402


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--duration", type=float, default=2.0, help="seconds of load per run (default 2)")
    p.add_argument("--repeat", type=int, default=5, help="runs (default 5)")
    p.add_argument("--code", type=Path, default=ROOT, help="the satscope checkout to run (default: this one)")
    return p.parse_args()


def _one(code: Path, url: str, duration_s: float, out: Path) -> tuple[float, float, float]:
    launched = time.monotonic()
    cmd = [sys.executable, "-m", "satscope", "run", "--target", url, "--users", "2", "--duration",
           f"{duration_s:g}", "--output-len", "16", "--out", str(out), "--quiet"]  # fmt: skip
    subprocess.run(cmd, cwd=code, check=True, capture_output=True, timeout=300)
    exited = time.monotonic()
    stages = json.loads((out / "run.json").read_text())["stages"]
    start, end = stages[0]["start_s"], stages[-1]["end_s"]
    return start - launched, end - start, exited - end


def main() -> None:
    args = _parse()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.fake_llm_server", "--port", str(port),
                               "--ttft", "0.02", "--itl", "0.005"], cwd=ROOT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health", 30.0, server)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeat):
                rows.append(_one(args.code.resolve(), url, args.duration, Path(tmp) / f"run{i}"))
                before, load, after = rows[-1]
                print(f"| {i + 1} | {before:.2f} s | {load:.2f} s | {after:.2f} s | {before + load + after:.2f} s |")
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"| median | {med[0]:.2f} s | {med[1]:.2f} s | {med[2]:.2f} s | {sum(med):.2f} s |")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
