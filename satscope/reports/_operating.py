"""The safe operating point: the last level free of errors, preemptions, queueing and p99 jumps.

The saturation point says where throughput stopped rising; a reader sizing a deployment wants the
highest load at which nothing was yet going wrong. Scanning levels from the lowest load, the safe
point is the level before the first one that had errors, preemptions, a waiting queue (closed loop: one on
average; any loop: one that grew) or a p99 jump against the level before; it is never above the
saturation point. Thresholds: ``satscope.reports._thresholds``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RULE_SAFE", "safe_point"]

T = THRESHOLDS
RULE_SAFE = (
    f"the last level, scanning up from the lowest load and never past the saturation point, before one "
    f"with an error rate ≥ {T.error_rate:.0%}, preemptions ≥ {T.preemptions_per_s:g}/s, a waiting queue "
    f"(closed loop: ≥ {T.queue_mean:g} on average; growth ≥ {T.queue_growth_per_s:g} requests/s) or a TTFT "
    f"(from intended send) or ITL p99 "
    f"≥ {T.tail_jump:g}x the level before (and {T.tail_jump_min_s * 1e3:g} ms more)"
)
_JUMP_COLUMNS = (("ttft_intended_p99_s", "TTFT p99"), ("itl_p99_s", "ITL p99"))


def _value(levels: pd.DataFrame, i: int, col: str) -> float | None:
    import math

    if col not in levels:
        return None
    v = float(levels[col].iloc[i])
    return v if math.isfinite(v) else None


def _trouble(levels: pd.DataFrame, i: int, open_loop: bool) -> str | None:
    """Why level ``i`` is not safe (with the figure), or None."""
    errors = _value(levels, i, "error_rate")
    if errors is not None and errors >= T.error_rate:
        return f"{errors:.0%} of requests failed"
    pre = _value(levels, i, "preemptions_per_s")
    if pre is not None and pre >= T.preemptions_per_s:
        return f"{pre:.2g} preemptions/s"
    growth = _value(levels, i, "requests_waiting_growth_per_s")
    if growth is not None and growth >= T.queue_growth_per_s:
        return f"waiting queue growing by {growth:.2g} requests/s"
    waiting = _value(levels, i, "requests_waiting_mean")
    if not open_loop and waiting is not None and waiting >= T.queue_mean:
        return f"{waiting:.1f} requests waiting on average"
    if i > 0:
        for col, name in _JUMP_COLUMNS:
            now, before = _value(levels, i, col), _value(levels, i - 1, col)
            if now is not None and before and now >= T.tail_jump * before and now - before >= T.tail_jump_min_s:
                return f"{name} {now:.3g} s, {now / before:.1f}x the level before"
    return None


def safe_point(
    levels: pd.DataFrame, saturation_pos: int | None, found: bool, open_loop: bool
) -> tuple[int | None, str | None]:
    """(position of the safe level or None, what went wrong at the level above it or None)."""
    last = saturation_pos if found else (len(levels) - 1 if len(levels) else None)
    for i in range(len(levels)):
        if last is None or i > last + 1:
            break
        why = _trouble(levels, i, open_loop)
        if why is not None:
            pos = i - 1 if i > 0 else None
            return (min(pos, last) if pos is not None else None), why
    return last, None
