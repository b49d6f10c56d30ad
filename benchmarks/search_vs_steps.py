"""`--shape search` against equal steps over the same range, on the bundled server with a known
capacity (``--max-num-seqs 4``: 4 sequences at once; 30 ms a step, 8-token answers).

Three real `satscope run` subprocesses, 3 s a level, 1 to 32 users: the search; equal steps with as
many levels as the search ran; equal steps of one user (the resolution the search reaches). Prints
a markdown table: levels, seconds of load, the command's wall time and what each one concluded.

    .venv/bin/python benchmarks/search_vs_steps.py [--out /tmp/search-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

COMMON = ["--serve", "--serve-arg=--preset=tiny", "--serve-arg=--step-delay-ms=30", "--serve-arg=--max-num-seqs=4",
          "--input-len", "16", "--output-len", "8", "--quiet", "--no-gpu"]  # fmt: skip
LEVEL_S = 3


def _run(out: Path, *flags: str) -> tuple[float, dict]:
    start = time.monotonic()
    cmd = [sys.executable, "-m", "satscope", "run", *COMMON, *flags, "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=400)
    return time.monotonic() - start, json.loads((out / "summary.json").read_text())


def _concluded(summary: dict) -> str:
    sat = summary["saturation"]
    knee = sat.get("knee") or {}
    if not sat["found"]:
        return f"report: no saturation up to {sat['offered_load_named']:g} users"
    return f"report: saturates at {sat['offered_load_named']:g} users, knee {knee.get('offered_load')} users"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/search-bench"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    wall, summary = _run(args.out / "search", "--shape", "search", "--users", "32", "--stage-duration",
                         str(LEVEL_S), "--budget", "40")  # fmt: skip
    found = summary["search"]
    levels = [lv["load"] for lv in found["levels"]]
    rows = [("search", len(levels), len(levels) * LEVEL_S, wall,
             f"between {found['good']:g} and {found['saturated']:g} users ({', '.join(f'{x:g}' for x in levels)}); "
             + _concluded(summary))]  # fmt: skip
    for steps in (len(levels), 32):
        wall, summary = _run(args.out / f"step{steps}", "--shape", "step", "--start-load", "1", "--users", "32",
                             "--steps", str(steps), "--duration", str(steps * LEVEL_S))  # fmt: skip
        rows.append((f"equal steps ({steps})", steps, steps * LEVEL_S, wall, _concluded(summary)))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| run | levels | load s | wall s | found |\n|---|---|---|---|---|")
    for name, n, load_s, wall_s, found_text in rows:
        print(f"| {name} | {n} | {load_s} | {wall_s:.1f} | {found_text} |")


if __name__ == "__main__":
    main()
