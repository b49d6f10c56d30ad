"""`satscope probe`: run the probes alone against a target, with a live table of what they see.

Imports only typer and the standard library at module level; the probes load when the command runs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import typer

from satscope.errors import SatscopeError

__all__ = ["parse_duration", "probe"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h`` or plain seconds (``90``, ``1.5``) into seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise SatscopeError(f"bad duration {text!r}", "use seconds or a unit: 30s, 2m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def probe(
    target: Annotated[str | None, typer.Option(help="Base URL of the server; its /metrics is scraped.")] = None,
    duration: Annotated[str, typer.Option(help="How long to sample: 30s, 2m, 1h.")] = "30s",
    out: Annotated[Path | None, typer.Option(help="Directory for samples.parquet and probes.json.")] = None,
    server_pid: Annotated[int | None, typer.Option(help="Server process id (its CPU cores and RSS).")] = None,
    metrics_url: Annotated[
        str | None, typer.Option(help="The server's /metrics URL when it is not TARGET/metrics.")
    ] = None,
    no_gpu: Annotated[bool, typer.Option("--no-gpu", help="Do not start the NVML GPU probe.")] = False,
    dcgm_url: Annotated[str | None, typer.Option(help="dcgm-exporter URL to scrape.")] = None,
    prometheus: Annotated[str | None, typer.Option(help="Prometheus URL to read the window back from.")] = None,
    interval_s: Annotated[float | None, typer.Option(help="Sampling period of every source.")] = None,
) -> None:
    """Sample GPU, server /metrics and host alone (no load) and show the latest values live."""
    seconds = parse_duration(duration)
    from rich.console import Console
    from rich.live import Live
    from rich.markup import escape

    from satscope.probes import ProbeConfig, ProbeRunner
    from satscope.probes._table import live_table

    try:
        config = ProbeConfig(target=target, out=out, metrics_url=metrics_url, server_pid=server_pid,
                             duration_s=seconds, gpu=not no_gpu,
                             dcgm_url=dcgm_url, prometheus_url=prometheus, interval_s=interval_s)
    except ValueError as exc:
        raise SatscopeError(str(exc), "see `satscope probe --help`") from None
    console = Console()
    runner = ProbeRunner(config, quiet=True)
    runner.start()
    errors = Console(stderr=True, soft_wrap=True)  # diagnostics on stderr, the table and counts on stdout
    for name, reason in runner.unavailable.items():
        errors.print(f"[yellow]{name} unavailable:[/] {escape(reason)}", markup=True, highlight=False)
    deadline = time.monotonic() + seconds
    try:
        with Live(live_table(runner, time.monotonic()), console=console, refresh_per_second=2) as live:
            while time.monotonic() < deadline:
                time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))
                live.update(live_table(runner, time.monotonic()))
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        runner.stop()
    console.line()
    for name, reason in runner.unavailable.items():
        errors.print(f"{name}: {reason}", highlight=False, markup=False)
    if out is not None:
        console.print(f"wrote {len(runner.buffer)} samples to {out}", highlight=False)
