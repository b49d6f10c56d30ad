"""Benchmark: how long a report takes, how big the HTML is, and peak memory, as runs grow.

Builds synthetic run directories (satscope/reports/_synthetic.py: a stepped run with a KV-cache knee) of
100k and 1M requests (8 streamed tokens each) with 10k and 100k probe samples, then builds each
report in a fresh subprocess so its peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``) is the
report's alone. Targets for the 1M run: ≤ 30 s, HTML ≤ 10 MB.

    .venv/bin/python benchmarks/report_scale.py [--only-large] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from satscope.reports._synthetic import SyntheticRun, write_synthetic_run  # noqa: E402

LEVELS = (16, 32, 64, 128, 256, 512)
KNEE = 128
TOKENS = 8
METRICS = 12  # probe metrics the synthetic run samples (server, host and gpu)
TARGET_S, TARGET_HTML_BYTES = 30.0, 10_000_000

# Runs in the child: time the phases, print one JSON line.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from satscope.reports._analyze import run_analysis
from satscope.reports._html import render_page
from satscope.reports._report_page import report_page
from satscope.run_format import write_bytes_atomic, write_json_atomic
an = run_analysis(sys.argv[1])
t1 = time.perf_counter()
write_json_atomic(sys.argv[1] + "/summary.json", an.summary)
html = render_page(report_page(an)).encode()
write_bytes_atomic(sys.argv[2], html)
t2 = time.perf_counter()
print(json.dumps({"analyze_s": t1 - t0, "render_s": t2 - t1, "total_s": t2 - t0, "html_bytes": len(html),
                  "bottleneck": an.summary["bottleneck"]["kind"], "knee": an.summary["saturation"]["offered_load"],
                  "requests": an.summary["run"]["requests_total"]}))
"""


def spec_for(requests: int, samples: int) -> SyntheticRun:
    """A synthetic run with about ``requests`` requests and ``samples`` probe samples."""
    e2e = 0.1 + (TOKENS - 1) * 0.02
    per_stage_s = sum(min(level, KNEE) for level in LEVELS) / e2e  # requests per second of stage
    stage_s = requests / per_stage_s
    interval = len(LEVELS) * stage_s * METRICS / samples
    return SyntheticRun(
        kind="kv_cache",
        levels=LEVELS,
        knee_load=KNEE,
        stage_s=stage_s,
        output_tokens=TOKENS,
        sample_interval_s=interval,
    )


def measure(run_dir: Path) -> dict[str, float]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(run_dir), str(run_dir / "report.html")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the largest child so far; sizes run small to large, so it is this one's.
    result["peak_rss_mib"] = max(peak_kib, before) / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-large", action="store_true", help="skip the 100k-request run")
    parser.add_argument("--keep", type=Path, help="build the runs under this folder and keep them")
    args = parser.parse_args()
    sizes = [(1_000_000, 100_000)] if args.only_large else [(100_000, 10_000), (1_000_000, 100_000)]
    base = args.keep or Path(tempfile.mkdtemp(prefix="satscope-bench-"))
    try:
        rows = _run_sizes(base, sizes)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    _print_table(rows)


def _run_sizes(base: Path, sizes: list[tuple[int, int]]) -> list[dict[str, float]]:
    rows = []
    for requests, samples in sizes:
        run_dir = base / f"run-{requests}"
        t0 = time.perf_counter()
        write_synthetic_run(run_dir, spec_for(requests, samples))
        build_s = time.perf_counter() - t0
        row = measure(run_dir) | {"samples": samples, "synthetic_build_s": build_s}
        row["parquet_bytes"] = sum(p.stat().st_size for p in run_dir.glob("*.parquet"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _print_table(rows: list[dict[str, float]]) -> None:
    big = rows[-1]
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print("| requests | samples | analyze s | render s | total s | HTML MB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['requests']:,} | {r['samples']:,} | {r['analyze_s']:.1f} | {r['render_s']:.1f} | "
            f"{r['total_s']:.1f} | {r['html_bytes'] / 1e6:.2f} | {r['peak_rss_mib']:.0f} |"
        )
    if len(rows) == 2:
        print(f"ratio 1M/100k total time: {rows[1]['total_s'] / rows[0]['total_s']:.1f}x for 10x the requests")
    ok = big["total_s"] <= TARGET_S and big["html_bytes"] <= TARGET_HTML_BYTES
    verdict = "meets" if ok else "MISSES"
    print(
        f"{verdict} the targets (≤ {TARGET_S:.0f} s, HTML ≤ {TARGET_HTML_BYTES / 1e6:.0f} MB) at 1M requests; "
        f"verdict on the synthetic run: {big['bottleneck']} at {big['knee']:g} users (built with knee {KNEE})"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
