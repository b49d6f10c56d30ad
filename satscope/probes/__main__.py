"""``python -m satscope.probes``: the probes process that ``satscope run`` starts beside the load.

Runs until SIGTERM/SIGINT or ``--duration``, flushing ``samples.parquet`` every few seconds and
writing ``probes.json`` at start and end; exits 0 after a clean stop, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from satscope.probes._config import ProbeConfig
from satscope.probes._runner import ProbeRunner

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> ProbeConfig:
    parser = argparse.ArgumentParser(prog="python -m satscope.probes", description=__doc__)
    parser.add_argument("--target", help="base URL of the server; its /metrics is scraped")
    parser.add_argument("--out", type=Path, help="run directory for samples.parquet and probes.json")
    parser.add_argument("--metrics-url", help="the server's /metrics URL when it is not TARGET/metrics")
    parser.add_argument("--server-pid", type=int, help="pid of the server process (CPU cores, RSS)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until SIGTERM/SIGINT)")
    parser.add_argument("--no-gpu", action="store_true", help="do not start the NVML GPU probe")
    parser.add_argument("--dcgm-url", help="dcgm-exporter URL to scrape")
    parser.add_argument("--prometheus", help="Prometheus server URL to read the run's window from")
    parser.add_argument("--prometheus-selector", default="", help='extra PromQL matchers, e.g. job="vllm"')
    parser.add_argument("--prometheus-window", type=float, default=30.0, help="rate() window, seconds")
    parser.add_argument("--interval-s", type=float, help="period of every source (default: per source)")
    parser.add_argument("--flush-interval-s", type=float, default=2.0, help="samples.parquet flush period")
    args = parser.parse_args(argv)
    try:
        return ProbeConfig(
            target=args.target, out=args.out, metrics_url=args.metrics_url, server_pid=args.server_pid,
            duration_s=args.duration,
            gpu=not args.no_gpu, dcgm_url=args.dcgm_url, prometheus_url=args.prometheus,
            prometheus_selector=args.prometheus_selector, prometheus_rate_window_s=args.prometheus_window,
            interval_s=args.interval_s, flush_interval_s=args.flush_interval_s,
        )
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits with code 2


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    runner = ProbeRunner(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.request_stop())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
