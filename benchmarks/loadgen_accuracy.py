"""How true are satscope's token timings? TTFT and ITL error against the server's own record.

Starts the deterministic server (``tests/fake_llm_server.py``: first token 40 ms after the request,
then one chunk every 8 ms), runs ``satscope run`` at each concurrency in one go, and compares every
measured chunk arrival with the time the server wrote it: median and p99 |ITL error| and |TTFT
error|, and streamed tokens/s per load-generator process; then the highest level again with
``--workers 2``. Prints a Markdown table.

The server's TTFT runs from its read of the request; a request can wait before that read, in the
kernel, while the server's one loop writes other streams' chunks. The server also records when each
request reached the host (``--rx-timestamps``: the kernel's receive time), which splits the TTFT
error: *send lag* (client stamp → kernel, the client's part), *server read lag* (kernel → the
server's read, the server's part) and *1st-token lag* (server's write → client's read, the client's
part). *Client TTFT err* = |measured TTFT − (first chunk written − request arrived)|, the error the
load generator itself adds.

    .venv/bin/python benchmarks/loadgen_accuracy.py --duration 8 --levels 1,16,64,200,400
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from satscope.reports import analyze  # noqa: E402
from tests.helpers import free_port, wait_http_ok  # noqa: E402

FAKE_FLAGS = ("--ttft", "0.04", "--itl", "0.008", "--rx-timestamps")


def measure(url: str, users: int, workers: int, duration: float, out_len: int, tmp: Path) -> dict:
    out = tmp / f"u{users}-w{workers}"
    cmd = [
        sys.executable,
        "-m",
        "satscope",
        "run",
        "--quiet",
        "--no-probes",
        "--no-report",
        "--target",
        url,
        "--users",
        str(users),
        "--spawn-rate",
        str(max(users, 10) * 4),
        "--duration",
        str(duration),
        "--output-len",
        str(out_len),
        "--input-len",
        "16",
        "--workers",
        str(workers),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=duration + 300)
    record = httpx.get(f"{url}/_records", timeout=60).json()["requests"]
    req = pq.read_table(out / "requests.parquet").to_pandas().set_index("request_id")
    tok = pq.read_table(out / "tokens.parquet").to_pandas()
    manifest = json.loads((out / "run.json").read_text())
    itl_err, ttft_err, first_lag, client_err, send_lag, read_lag = [], [], [], [], [], []
    for rid, g in tok.groupby("request_id", sort=False):
        sent = np.asarray(record[rid]["sent"])
        got = g.sort_values("index").t.to_numpy()
        if len(got) != len(sent):
            continue
        itl_err.append(np.abs(np.diff(got) - np.diff(sent)))
        ttft_err.append(abs((got[0] - req.loc[rid, "start"]) - (sent[0] - record[rid]["received"])))
        first_lag.append(got[0] - sent[0])
        arrived = record[rid]["kernel_received"]
        if arrived is not None:
            client_err.append(abs((got[0] - req.loc[rid, "start"]) - (sent[0] - arrived)))
            send_lag.append(arrived - req.loc[rid, "start"])
            read_lag.append(record[rid]["received"] - arrived)
    itl = np.concatenate(itl_err) if itl_err else np.array([np.nan])
    ttft = np.asarray(ttft_err) if ttft_err else np.array([np.nan])
    lag = np.asarray(first_lag) if first_lag else np.array([np.nan])

    def ms(values: list[float], q: float) -> float:
        return float(np.quantile(values, q)) * 1e3 if values else float("nan")

    ok = req[req.status == "ok"]
    span = ok.end.max() - ok.start.min()
    return {
        "users": users,
        "workers": workers,
        "requests": len(req),
        "errors": int((req.status != "ok").sum()),
        "error_kinds": req[req.status != "ok"].status.value_counts().to_dict(),
        "itl_med_ms": np.median(itl) * 1e3,
        "itl_p99_ms": np.quantile(itl, 0.99) * 1e3,
        "ttft_med_ms": np.median(ttft) * 1e3,
        "ttft_p99_ms": np.quantile(ttft, 0.99) * 1e3,
        "lag_med_ms": np.median(lag) * 1e3,
        "lag_p99_ms": np.quantile(lag, 0.99) * 1e3,
        "client_med_ms": ms(client_err, 0.5),
        "client_p99_ms": ms(client_err, 0.99),
        "send_med_ms": ms(send_lag, 0.5),
        "send_p99_ms": ms(send_lag, 0.99),
        "read_med_ms": ms(read_lag, 0.5),
        "read_p99_ms": ms(read_lag, 0.99),
        "tokens_per_s": len(tok) / span,
        "tokens_per_s_per_proc": len(tok) / span / max(workers, 1),
        "cpu_p90": manifest["loadgen"]["cpu_p90"],
        "saturated": "loadgen_saturated" in {w["code"] for w in analyze(out)["validity"]["warnings"]},
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--levels", default="1,16,64,200,400")
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--workers-level", type=int, default=None, help="level for the --workers 2 run (default: max)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm_server", "--port", str(port), *FAKE_FLAGS],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        wait_http_ok(f"{url}/health", 20, server)
        with tempfile.TemporaryDirectory() as tmp:
            for users in levels:
                rows.append(measure(url, users, 0, args.duration, args.output_len, Path(tmp)))
                print(rows[-1], file=sys.stderr)
            wl = args.workers_level or max(levels)
            rows.append(measure(url, wl, 2, args.duration, args.output_len, Path(tmp)))
            print(rows[-1], file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, duration {args.duration} s per level, "
        f"{args.output_len} tokens per request\n"
    )
    print(
        "| streams | procs | requests | errors | ITL err median / p99 | TTFT err median / p99 "
        "| client TTFT err median / p99 | send lag median / p99 | 1st-token lag median / p99 "
        "| server read lag median / p99 | tokens/s | tokens/s per proc | loadgen CPU p90 | loadgen_saturated |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['users']} | {max(r['workers'], 1)} | {r['requests']} | {r['errors']} "
            f"| {r['itl_med_ms']:.3f} / {r['itl_p99_ms']:.2f} ms | {r['ttft_med_ms']:.3f} / {r['ttft_p99_ms']:.2f} ms "
            f"| {r['client_med_ms']:.3f} / {r['client_p99_ms']:.2f} ms "
            f"| {r['send_med_ms']:.3f} / {r['send_p99_ms']:.2f} ms "
            f"| {r['lag_med_ms']:.3f} / {r['lag_p99_ms']:.2f} ms | {r['read_med_ms']:.3f} / {r['read_p99_ms']:.2f} ms "
            f"| {r['tokens_per_s']:.0f} | {r['tokens_per_s_per_proc']:.0f} | {_pct(r['cpu_p90'])} | {r['saturated']} |"
        )
    for r in rows:
        if r["errors"]:
            print(f"\n{r['users']} streams × {max(r['workers'], 1)} procs: {r['error_kinds']}")


if __name__ == "__main__":
    main()
