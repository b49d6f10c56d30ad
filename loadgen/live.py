"""Rich live progress of a run, fed by the load generator's ``SATSCOPE progress`` lines."""

from __future__ import annotations

import time
from typing import Any

from loadgen.shapes import Shape

__all__ = ["live_progress", "progress_line"]


def progress_line(p: dict[str, Any], shape: Shape) -> str:
    """One line: stage, users or rate, req/s, tokens/s, TTFT p50/p99, errors."""
    if not p:
        return "starting…"

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v * 1e3:.0f} ms"

    load = p.get("load")
    offered = (
        f"{p.get('users', 0)} users"
        if shape.kind == "closed"
        else f"{'–' if load is None else f'{load:.1f}'} req/s offered"
    )
    return (
        f"stage {p.get('stage') or 'draining'} · {offered} · {p['req_per_s']:.1f} req/s · "
        f"{p['tokens_per_s']:.0f} tok/s · TTFT p50 {ms(p['ttft_p50_s'])} p99 {ms(p['ttft_p99_s'])} · "
        f"{p['requests']} requests, {p['errors']} errors"
    )


def live_progress(console: Any, locust: Any, shape: Shape, enabled: bool = True, limit_s: float = 1e9) -> None:
    """Refresh the line until the load generator's main process exits or ``limit_s`` passes."""
    deadline = time.monotonic() + limit_s
    if not enabled:
        while locust.main.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        return
    from rich.live import Live

    with Live(progress_line({}, shape), console=console, refresh_per_second=4, transient=False) as live:
        while locust.main.poll() is None and time.monotonic() < deadline:
            live.update(progress_line(locust.progress, shape))
            time.sleep(0.25)
        live.update(progress_line(locust.progress, shape))
