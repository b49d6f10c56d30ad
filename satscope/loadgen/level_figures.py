"""A search level's figures, from the request records of its span (pure: no clock, no gevent).

``level_figures`` reads request columns (``satscope.loadgen.records`` names) the load generator
holds (``satscope/loadgen/recent.py``), leaves the level's first quarter out (``SETTLE_SHARE``: the
queue of the level before drains then) and returns :class:`LevelFigures`: throughput over the span,
latency from the intended send of the requests dispatched in it, the dispatchers' count (open
loop), SLO attainment (``--slo``) and the server's own scrapes (``satscope/loadgen/server_live.py``).
``satscope/loadgen/search.py`` judges them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from satscope.loadgen.server_live import ServerWindow
from satscope.quantile import quantile
from satscope.reports._goodput import Slos

__all__ = ["MIN_COMPLETED", "SETTLE_SHARE", "LevelFigures", "level_figures"]

MIN_COMPLETED = 5  # completions a level needs before its throughput and p99 mean anything
SETTLE_SHARE = 0.25  # the first quarter of a level is left out: the last level's queue drains then


@dataclass(slots=True, frozen=True)
class LevelFigures:
    """What one level measured. Throughput over its span; latency of the requests it dispatched."""

    load: float
    span_s: float
    completed: int  # ok completions inside the span
    finished: int  # requests dispatched in the level that have a record (any status but dropped)
    errors: int  # of those, not ok
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p99_s: float | None  # from the intended send
    e2e_p99_s: float | None  # from the intended send
    e2e_p50_s: float | None = None  # from the intended send: the lowest level's is the unloaded request time
    ended: int = 0  # requests that ended inside the span, whatever their status (dropped ones excluded)
    dropped: int = 0  # dispatches dropped inside the span (--max-in-flight)
    dispatched: int | None = None  # open loop: dispatches in the span (dropped ones included), by the dispatchers
    slo_judged: int = 0  # requests whose SLO attainment was judged (dispatched in the level, after the backlog)
    slo_met: int = 0  # of those, ok and within every SLO
    # the server's own scrapes in the span (satscope/loadgen/server_live.py); None: no such figure
    server_samples: int = 0
    server_waiting_p50: float | None = None
    server_running_max: float | None = None
    server_kv_max: float | None = None
    server_preemptions_per_s_max: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.finished if self.finished else 0.0

    @property
    def dispatched_per_s(self) -> float | None:
        """Open loop: requests dispatched per second over the span (dropped ones included)."""
        return None if self.dispatched is None else self.dispatched / self.span_s

    @property
    def attainment(self) -> float | None:
        return self.slo_met / self.slo_judged if self.slo_judged else None

    @property
    def throughput(self) -> float:
        return self.output_tokens_per_s if self.output_tokens_per_s > 0 else self.requests_per_s

    def to_json(self) -> dict[str, Any]:
        extra = {"dispatched_per_s": self.dispatched_per_s, "attainment": self.attainment}
        return {**asdict(self), "error_rate": self.error_rate, **extra}


def level_figures(cols: dict[str, Sequence[Any]], load: float, start_s: float, end_s: float, measured_to_s: float,
                  dispatched: Callable[[float, float], int] | None = None, slos: Slos | None = None,
                  server: Callable[[float, float], ServerWindow | None] | None = None,
                  ) -> LevelFigures:  # fmt: skip
    """Figures of the level that ran from ``start_s`` to ``end_s`` (monotonic seconds) from request
    columns (``satscope.loadgen.records`` names), its first ``SETTLE_SHARE`` left out (requests queued by the
    level before still finish then). ``measured_to_s``: records are complete up to here (a master's
    batches arrive up to a second late), so throughput counts completions up to it.

    ``dispatched(a, b)`` (open loop) counts the dispatches intended in ``[a, b)``: requests still in
    flight have no record yet, so the records cannot say what was dispatched. With ``slos``, the
    requests dispatched in the level are judged against them, from the end of the last earlier
    request known (a backlog the levels before left is not this level's doing) when that leaves
    ``MIN_COMPLETED`` of them, else from the span's start. ITL is a request's mean gap,
    ``(end − first token) / (chunks − 1)``. ``server(a, b)``: the server's own scrapes in the span
    (``satscope.loadgen.server_live.ServerLive.window``)."""
    level_start = start_s
    start_s += SETTLE_SHARE * (end_s - start_s)
    span = max(measured_to_s - start_s, 1e-9)
    completed, tokens, finished, errors, ended, dropped = 0, 0, 0, 0, 0, 0
    ttft: list[float] = []
    e2e: list[float] = []
    backlog_end = -math.inf
    mine: list[tuple[float, bool]] = []  # requests dispatched in the level: intended start, met every SLO
    for intended, first, end, status, out, chunks in zip(
        cols["intended_start"], cols["first_token"], cols["end"], cols["status"], cols["output_tokens"],
        cols["output_chunks"], strict=True,
    ):  # fmt: skip
        ok = status == "ok"
        if start_s <= end < measured_to_s:
            if status == "dropped":
                dropped += 1
            else:
                ended += 1
        if ok and start_s <= end < measured_to_s:
            completed += 1
            tokens += out if out is not None else chunks
        if intended < level_start and status != "dropped":
            backlog_end = max(backlog_end, end)
        if slos is not None and level_start <= intended < end_s:
            mine.append((intended, ok and _meets(slos, intended, first, end, chunks)))
        if not start_s <= intended < end_s or status == "dropped":
            continue
        finished += 1
        if not ok:
            errors += 1
            continue
        e2e.append(end - intended)
        if first is not None:
            ttft.append(first - intended)
    judged = [met for intended, met in mine if intended >= max(start_s, backlog_end)]
    if len(judged) < MIN_COMPLETED:
        judged = [met for intended, met in mine if intended >= start_s]
    e2e.sort()
    sw = server(start_s, measured_to_s) if server is not None else None
    return LevelFigures(
        load, span, completed, finished, errors, completed / span, tokens / span, quantile(sorted(ttft), 0.99),
        quantile(e2e, 0.99), quantile(e2e, 0.5), ended, dropped,
        None if dispatched is None else dispatched(start_s, measured_to_s),
        len(judged), sum(judged),
        *((sw.samples, sw.waiting_p50, sw.running_max, sw.kv_max, sw.preemptions_per_s_max) if sw else ()),
    )  # fmt: skip


def _meets(slos: Slos, intended: float, first: float | None, end: float, chunks: int) -> bool:
    """An ok request within every SLO given (TTFT and E2E from the intended send), as ``satscope.reports._goodput``."""
    if slos.ttft_s is not None and (first is None or first - intended > slos.ttft_s):
        return False
    if slos.itl_s is not None and chunks > 1 and first is not None and (end - first) / (chunks - 1) > slos.itl_s:
        return False
    return slos.e2e_s is None or end - intended <= slos.e2e_s
