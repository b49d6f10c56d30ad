"""Soak: bounded mixed load with disconnects against the bundled server; nothing leaks, nothing is lost.

Starts `satscope serve` (tiny preset, loopback) and, for `--duration` seconds, drives it two ways at
once:
- `satscope run` (closed loop, `--users` users, varied input and output lengths, streamed), which
  writes one record per request into a run directory;
- a disconnector of its own: every `1 / --disconnect-rate` seconds a raw socket asks for a long
  completion and drops the connection (after the first token, while queued, or while a
  non-streamed answer is computed).

Every second it samples the server's RSS. At the end it checks:
- RSS growth after warm-up (the first `--warmup-fraction` of the run) under 5 %;
- the KV pool back to 0 % with nothing running or waiting;
- zero lost records: the load generator's requests sent = its records written = rows in
  requests.parquet, and those rows plus the disconnector's requests plus satscope run's two
  calibration requests (`run.json` `loadgen.calibration_requests`) = the requests the server
  counted (`satscope_requests_total` over every finish reason, plus `satscope_requests_rejected_total`).

Prints a JSON summary and a Markdown table; exit code 0 when every check passes.

    .venv/bin/python benchmarks/soak.py                 # 5 minutes
    .venv/bin/python benchmarks/soak.py --duration 60   # a shorter soak on a busy machine
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import bundled_server  # noqa: E402
from tests.reliability._scrape import counter_sum, scrape, wait_idle  # noqa: E402

RSS_GROWTH_LIMIT = 0.05


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    p.add_argument("--users", type=int, default=8, help="satscope run's closed-loop users")
    p.add_argument("--disconnect-rate", type=float, default=4.0, help="disconnecting clients per second")
    p.add_argument("--warmup-fraction", type=float, default=0.2, help="share of the run before RSS is compared")
    p.add_argument("--out", type=Path, default=None, help="where the run directory goes (default: a temp dir)")
    args = p.parse_args()
    if not (args.duration > 0 and args.users > 0 and args.disconnect_rate > 0 and 0 < args.warmup_fraction < 1):
        p.error("--duration, --users and --disconnect-rate must be > 0, --warmup-fraction in (0, 1)")
    return args


async def _disconnector(port: int, duration_s: float, rate: float, counts: dict[str, int]) -> None:
    """Open a connection every 1/rate s, ask for 1000 tokens, leave early; bounded in time and count."""

    async def one(i: int) -> None:
        stream = i % 3 != 2
        payload = json.dumps(
            {"prompt": f"soak {i} " * (1 + i % 20), "max_tokens": 1000, "ignore_eos": True, "stream": stream}
        ).encode()
        head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        counts["sent"] += 1
        try:
            writer.write(head.encode() + payload)
            await writer.drain()
            if i % 3 == 0:
                await asyncio.wait_for(reader.readuntil(b"data: "), 30)  # the first token, then gone
            else:
                await asyncio.sleep(0.05 + (i % 7) * 0.05)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            counts["odd"] += 1
        finally:
            writer.transport.abort()

    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < duration_s:
        tasks.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(1.0 / rate)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


def _sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    proc = psutil.Process(pid)
    start = time.monotonic()
    while not stop.wait(1.0):
        out.append((time.monotonic() - start, proc.memory_info().rss))


def soak(args: argparse.Namespace, work: Path) -> dict[str, object]:
    out = args.out or work / "soak-run"
    flags = ("--max-waiting", "4096", "--log-level", "warning")
    with bundled_server(*flags) as server:
        rss: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(server.proc.pid, stop, rss), daemon=True)
        sampler.start()
        run_cmd = [
            sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--no-report",
            "--target", server.url, "--users", str(args.users), "--duration", str(args.duration),
            "--input-len", "uniform:64:48", "--output-len", "uniform:48:40", "--timeout", "120",
            "--out", str(out),
        ]  # fmt: skip
        run = subprocess.Popen(run_cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        counts = {"sent": 0, "odd": 0}
        asyncio.run(_disconnector(server.port, args.duration, args.disconnect_rate, counts))
        _, run_err = run.communicate(timeout=args.duration + 300)
        h = wait_idle(server.url, 60)
        stop.set()
        sampler.join()
        samples = scrape(server.url)

    manifest = json.loads((out / "run.json").read_text())
    requests = pq.read_table(out / "requests.parquet").to_pandas()
    server_counted = counter_sum(samples, "satscope_requests_total") + counter_sum(
        samples, "satscope_requests_rejected_total"
    )
    warm_end = args.duration * args.warmup_fraction
    after = [r for t, r in rss if t >= warm_end]
    base = statistics.median(r for t, r in rss if warm_end - 5 <= t <= warm_end + 5)
    end = statistics.median(r for _, r in rss[-5:])
    loadgen = manifest["loadgen"]
    result: dict[str, object] = {
        "duration_s": args.duration,
        "run_status": manifest["status"],
        "run_exit_code": run.returncode,
        "loadgen_requests_sent": loadgen["requests_sent"],
        "loadgen_records_written": loadgen["records_written"],
        "requests_parquet_rows": len(requests),
        "record_statuses": requests.status.value_counts().to_dict(),
        "disconnector_requests": counts["sent"],
        "disconnector_odd": counts["odd"],
        "server_counted": int(server_counted),
        "server_aborted": int(counter_sum(samples, "satscope_requests_total", finish_reason="abort")),
        "server_errors": int(counter_sum(samples, "satscope_requests_total", finish_reason="error")),
        "rss_warm_mib": round(base / 2**20, 1),
        "rss_end_mib": round(end / 2**20, 1),
        "rss_max_after_warmup_mib": round(max(after) / 2**20, 1),
        "rss_growth": round(end / base - 1, 4),
        "kv_cache_usage_end": h["kv_cache_usage"],
        "running_end": h["num_requests_running"],
        "waiting_end": h["num_requests_waiting"],
    }
    # satscope run asks the target twice for its tokens per word before the load: not records
    calibration = int(loadgen.get("calibration_requests") or 0)
    result["calibration_requests"] = calibration
    lost = int(result["loadgen_requests_sent"]) + calibration + counts["sent"] - int(server_counted)
    result["lost"] = lost
    result["checks"] = {
        "rss_growth_under_5pct": float(result["rss_growth"]) < RSS_GROWTH_LIMIT,
        "kv_back_to_zero": h["kv_cache_usage"] == 0.0 and h["num_requests_running"] == 0,
        "sent_equals_written": loadgen["requests_sent"] == loadgen["records_written"] == len(requests),
        "server_counted_every_request": lost == 0,
        "no_engine_errors": result["server_errors"] == 0,
        "every_disconnect_aborted": result["server_aborted"] == counts["sent"],
    }
    if run.returncode != 0:
        result["run_stderr_tail"] = run_err[-2000:]
    return result


def _markdown(r: dict[str, object]) -> str:
    checks = r["checks"]
    assert isinstance(checks, dict)
    rows = [
        ("load", f"{r['duration_s']:.0f} s; satscope run + disconnector"),
        ("requests: loadgen sent / written / parquet rows", f"{r['loadgen_requests_sent']} / "
         f"{r['loadgen_records_written']} / {r['requests_parquet_rows']}"),
        ("record statuses", json.dumps(r["record_statuses"])),
        ("disconnecting clients", str(r["disconnector_requests"])),
        ("calibration requests (before the load, not records)", str(r["calibration_requests"])),
        ("server counted (finished + rejected) / aborted", f"{r['server_counted']} / {r['server_aborted']}"),
        ("lost records", str(r["lost"])),
        ("server RSS warm → end (max after warm-up), MiB",
         f"{r['rss_warm_mib']} → {r['rss_end_mib']} ({r['rss_max_after_warmup_mib']})"),
        ("RSS growth after warm-up", f"{100 * float(r['rss_growth']):+.2f} %"),
        ("KV usage / running / waiting at the end",
         f"{r['kv_cache_usage_end']} / {r['running_end']} / {r['waiting_end']}"),
    ]  # fmt: skip
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    lines.append("")
    lines.append("Checks: " + ", ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in checks.items()))
    return "\n".join(lines)


def main() -> int:
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="satscope-soak-") as work:
        result = soak(args, Path(work))
    print(json.dumps(result, indent=2))
    print()
    print(_markdown(result))
    checks = result["checks"]
    assert isinstance(checks, dict)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
