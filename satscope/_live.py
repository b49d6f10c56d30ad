"""Live progress of a run, fed by the load generator's ``SATSCOPE progress`` lines: a rich line on a
terminal, plain lines every few seconds elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from satscope.loadgen.shapes import Shape

__all__ = ["PLAIN_EVERY_S", "live_progress", "progress_line"]

PLAIN_EVERY_S = 5.0  # without a terminal: one plain progress line this often


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


def live_progress(
    console: Any,
    locust: Any,
    shape: Shape,
    enabled: bool = True,
    limit_s: float = 1e9,
    every_s: float = PLAIN_EVERY_S,
    on_start: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Show progress until the load generator's main process exits or ``limit_s`` passes.

    On a terminal one line refreshes in place; elsewhere (a CI log, a pipe) a plain line is printed
    every ``every_s``, each a whole line, so logs never get a half-drawn or glued line.
    ``on_start`` is called once with the load generator's ``start`` message.
    """
    deadline = time.monotonic() + limit_s
    started = [False]

    def tick() -> None:
        time.sleep(0.2)
        if on_start is not None and not started[0] and locust.start is not None:
            started[0] = True
            on_start(locust.start)

    if not enabled:
        while locust.main.poll() is None and time.monotonic() < deadline:
            tick()
        return
    if not console.is_terminal:
        next_line = time.monotonic() + every_s
        while locust.main.poll() is None and time.monotonic() < deadline:
            tick()
            if time.monotonic() >= next_line:
                console.print(progress_line(locust.progress, shape), soft_wrap=True, markup=False, highlight=False)
                next_line += every_s
        console.print(progress_line(locust.progress, shape), soft_wrap=True, markup=False, highlight=False)
        return
    from rich.live import Live

    with Live(progress_line({}, shape), console=console, refresh_per_second=4, transient=False) as live:
        while locust.main.poll() is None and time.monotonic() < deadline:
            live.update(progress_line(locust.progress, shape))
            tick()
        live.update(progress_line(locust.progress, shape))
