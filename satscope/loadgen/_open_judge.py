"""The open-loop search's evidence on one level: the served rule, and the capacity an overload measures.

A level's shortfall, requests dispatched in its span minus those completed ok in it, is the rise of
what is in flight over the span. The report's open-loop rule (``satscope.reports._knee.served``)
calls a level saturated when the shortfall is over its allowance: (1 − ``served_share``) of what it
dispatched, and at least the count noise 2√(1 + rate × the unloaded request time). On short levels
of Poisson arrivals that point rule errs both ways near the capacity: a level at 85 % of it queues
on its way to its steady length and in its bursts, and a level 15 % past it may have drawn fewer
arrivals than its rate. So the search sorts a level three ways:

- **overloaded**: short by the allowance and ``OVERLOAD_NOISES`` count noises more. No fluctuation
  of a stable level explains that much (``benchmarks/search_judge.py`` simulates four slots and 5 s
  Poisson levels: with ``--overload-noises 1``, 8 searches in 300 missed the capacity, at two none); its
  server was busy throughout, so the rate it completed is the server's capacity as measured (a busy
  server completes at its capacity whatever is offered);
- **short**: over the allowance but within the noise of it: the point rule would call it saturated;
- **served**: within the allowance.

Once an overload has measured the capacity, ``satscope.loadgen.search.Search`` judges every other
level by its offered rate against it (the arrivals' noise does not enter), and a short level waits
for that measure (the search doubles past it) instead of being called saturated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satscope.reports._thresholds import THRESHOLDS, Thresholds

if TYPE_CHECKING:
    from satscope.loadgen.level_figures import LevelFigures

__all__ = ["OVERLOAD_NOISES", "OpenEvidence", "evidence", "judge_open"]

OVERLOAD_NOISES = 2.0  # an overload: short by the allowance and this many count noises more


@dataclass(frozen=True, slots=True)
class OpenEvidence:
    """One open-loop level against the served rule (counts in requests over its span)."""

    kind: str  # overloaded, short, served, errors (saturated by errors), idle (nothing dispatched)
    why: str
    served_per_s: float = 0.0

    @property
    def saturated(self) -> bool:
        """The point rule's decision (the report's): errors, or short beyond the allowance."""
        return self.kind in ("overloaded", "short", "errors")


def evidence(level: LevelFigures, lower: Sequence[LevelFigures], t: Thresholds = THRESHOLDS) -> OpenEvidence:
    """The level's class by errors and the served rule; ``lower``: the levels judged served so far
    (the lowest one's median E2E is the unloaded request time of the count noise)."""
    import pandas as pd

    from satscope.reports._knee import allowance, count_noise

    if level.dispatched == 0:
        why = "nothing dispatched in the span: too low a rate for the level (raise --stage-duration)"
        return OpenEvidence("idle", why)
    if level.error_rate >= t.error_rate:
        return OpenEvidence("errors", f"errors {level.error_rate:.0%} of {level.finished} ≥ {t.error_rate:.0%}")
    dispatched = level.dispatched_per_s
    if dispatched is None:  # no count from the dispatchers: what ended and was dropped is all that is known
        dispatched = (level.ended + level.dropped) / level.span_s
    unloaded = [x for x in [*lower, level] if x.e2e_p50_s is not None]
    request_s = min(unloaded, key=lambda x: x.load).e2e_p50_s if unloaded else 0.0
    row = pd.DataFrame({"dispatched_per_s": [dispatched], "span_s": [level.span_s], "request_s": [request_s]})
    noise, allowed = float(count_noise(row).iloc[0]), float(allowance(row).iloc[0])
    sent = dispatched * level.span_s
    short = sent - level.completed
    why = (f"served {level.requests_per_s:.3g} of {dispatched:.3g} req/s dispatched (short {short:.1f} "
           f"requests, noise allows {allowed:.1f})")  # fmt: skip
    kind = "overloaded" if short > allowed + OVERLOAD_NOISES * noise else "short" if short > allowed else "served"
    if kind == "served" and level.finished == 0 and level.completed == 0 and level.dropped == 0:
        kind, why = "short", f"no request finished of {sent:.0f} dispatched: too few to tell"  # a higher level will
    return OpenEvidence(kind, why, level.requests_per_s)


def judge_open(level: LevelFigures, lower: Sequence[LevelFigures], t: Thresholds = THRESHOLDS) -> tuple[bool, str]:
    """The point rule alone, (saturated, why): errors, or a shortfall over the allowance (the SLO
    search's "not served", and the report's rule)."""
    ev = evidence(level, lower, t)
    return ev.saturated, ev.why
