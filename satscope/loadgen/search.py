"""``--shape search``: find the saturation point without guessing it (pure: no clock, no gevent).

The search starts at ``start_load``, doubles the load until a level is saturated (or the maximum is
reached), then bisects between the last good and the first saturated level until the bracket is
within ``precision`` (relative width; for users one user), the budget is spent, or ``MAX_LEVELS``
ran. Each level is a hold stage of ``stage_duration_s``; its figures come from the records of the
requests it dispatched (``level_figures``) and :func:`judge` decides, with the knee rule of
``satscope/reports/_knee.py`` and its thresholds (``satscope/reports/_thresholds.py``):

- saturated when errors are at least ``error_rate`` of the requests it dispatched that finished;
- closed loop: saturated when its throughput gain over the best lower level is under
  ``min_efficiency`` × its load gain while a tail latency (TTFT or E2E p99 from the intended send)
  rose by ``min_latency_rise`` × and ``min_latency_rise_s``;
- open loop: saturated when it did not serve what it dispatched beyond the count noise (the
  open-loop rule ``satscope.reports._knee.served``: the dispatchers' own count of what they dispatched in
  the span, dropped dispatches included, against the requests completed ok in it);
- SLO search (``--slo``): a level is bad when the share of its requests that met every SLO is under
  ``attainment`` (open loop: or when it was not served); the bracket is then the max goodput load;
- a level with fewer than ``MIN_COMPLETED`` completions is too few to decide: it runs once more.

:class:`SearchRun` drives it on elapsed time, as the Locust shape's ``tick()`` asks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from satscope.errors import SatscopeError
from satscope.loadgen.shapes import Shape, Stage
from satscope.quantile import quantile
from satscope.reports._goodput import Slos
from satscope.reports._thresholds import THRESHOLDS, Thresholds
from satscope.search_file import SearchFile, SearchLevel

__all__ = ["MAX_LEVELS", "MIN_COMPLETED", "LevelFigures", "Search", "SearchRun", "SearchSettings", "judge",
           "judge_open", "judge_slo", "level_figures"]  # fmt: skip

MIN_COMPLETED = 5  # completions a level needs before its throughput and p99 mean anything
SETTLE_SHARE = 0.25  # the first quarter of a level is left out: the last level's queue drains then
MAX_LEVELS = 12  # a hard stop whatever the budget


@dataclass(slots=True, frozen=True)
class SearchSettings:
    """The search flags: ``--start-load``, ``--users``/``--rate`` (max), ``--stage-duration``,
    ``--precision``, ``--budget``; with ``--slo`` (``slos``: ``Slos.as_dict()``) the search looks for
    the highest load whose SLO attainment is at least ``attainment`` (``--slo-attainment``)."""

    kind: str  # closed or open
    start_load: float
    max_load: float
    stage_duration_s: float
    precision: float = 0.1
    budget_s: float = 60.0
    spawn_rate: float | None = None
    slos: dict[str, float | None] | None = None
    attainment: float = 0.99

    def __post_init__(self) -> None:
        if not 0 < self.attainment <= 1:
            raise SatscopeError(f"--slo-attainment must be in (0, 1], got {self.attainment:g}",
                                "the share of requests meeting every --slo, e.g. --slo-attainment 0.99")  # fmt: skip
        if not self.precision > 0:
            raise SatscopeError(f"--precision must be > 0, got {self.precision:g}",
                                "the relative width of the final bracket, e.g. --precision 0.1")  # fmt: skip
        if not self.start_load > 0:
            raise SatscopeError(f"--start-load must be > 0 for a search, got {self.start_load:g}",
                                "the first level's load, e.g. --start-load 1")  # fmt: skip
        if self.start_load > self.max_load:
            flag = "--users" if self.kind == "closed" else "--rate"
            raise SatscopeError(f"--start-load {self.start_load:g} is above the search's maximum {flag} "
                                f"{self.max_load:g}", f"raise {flag} or lower --start-load")  # fmt: skip
        if self.budget_s < self.stage_duration_s:
            raise SatscopeError(f"--budget {self.budget_s:g} s is shorter than one level ({self.stage_duration_s:g} s)",
                                "raise --budget or lower --stage-duration")  # fmt: skip

    @property
    def whole(self) -> bool:
        return self.kind == "closed"

    @property
    def slo(self) -> Slos | None:
        """The SLOs the search judges attainment by; None: it looks for the saturation point."""
        slos = Slos(**self.slos) if self.slos else None
        return slos if slos is not None and slos.given else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
    ``(end − first token) / (chunks − 1)``."""
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
    return LevelFigures(
        load, span, completed, finished, errors, completed / span, tokens / span, quantile(sorted(ttft), 0.99),
        quantile(e2e, 0.99), quantile(e2e, 0.5), ended, dropped,
        None if dispatched is None else dispatched(start_s, measured_to_s),
        len(judged), sum(judged),
    )  # fmt: skip


def _meets(slos: Slos, intended: float, first: float | None, end: float, chunks: int) -> bool:
    """An ok request within every SLO given (TTFT and E2E from the intended send), as ``satscope.reports._goodput``."""
    if slos.ttft_s is not None and (first is None or first - intended > slos.ttft_s):
        return False
    if slos.itl_s is not None and chunks > 1 and first is not None and (end - first) / (chunks - 1) > slos.itl_s:
        return False
    return slos.e2e_s is None or end - intended <= slos.e2e_s


def _latency_rose(now: LevelFigures, before: LevelFigures, t: Thresholds) -> str | None:
    for name in ("ttft_p99_s", "e2e_p99_s"):
        a, b = getattr(now, name), getattr(before, name)
        if a is not None and b is not None and b > 0 and a >= t.min_latency_rise * b and a - b >= t.min_latency_rise_s:
            return f"{name.removesuffix('_s').replace('_', ' ')} {b:.3g} → {a:.3g} s"
    return None


def judge(level: LevelFigures, lower: Sequence[LevelFigures], t: Thresholds = THRESHOLDS) -> tuple[bool, str]:
    """(saturated, why) for ``level`` against the levels run at lower loads."""
    if level.finished == 0 and level.completed == 0:
        return True, "no request finished"
    if level.error_rate >= t.error_rate:
        return True, f"errors {level.error_rate:.0%} of {level.finished} ≥ {t.error_rate:.0%}"
    below = [x for x in lower if x.load < level.load and x.throughput > 0]
    if not below:
        return False, "the lowest level: nothing to compare with"
    best = max(below, key=lambda x: x.throughput)
    load_gain = level.load / best.load - 1.0
    efficiency = (level.throughput / best.throughput - 1.0) / load_gain if load_gain > 0 else math.inf
    rose = _latency_rose(level, best, t)
    figures = f"efficiency {efficiency:.2f} vs {best.load:g} (< {t.min_efficiency:g} saturates)"
    if efficiency < t.min_efficiency and rose:
        return True, f"{figures}, {rose}"
    return False, figures + ("" if rose else ", tail latency did not rise")


def judge_open(level: LevelFigures, lower: Sequence[LevelFigures], t: Thresholds = THRESHOLDS) -> tuple[bool, str]:
    """Open loop: (saturated, why) by errors and the report's served rule (``satscope.reports._knee.served``):
    the level's shortfall, what it dispatched minus what it served, is over (1 − ``served_share``) of
    what it dispatched and over the count noise 2√(1 + rate × the unloaded request time) (the
    lowest level's median E2E)."""
    import pandas as pd

    from satscope.reports._knee import count_noise, served

    if level.dispatched == 0:
        return False, "nothing dispatched in the span: too low a rate for the level (raise --stage-duration)"
    if level.finished == 0 and level.completed == 0 and level.dropped == 0:
        return True, "no request finished"
    if level.error_rate >= t.error_rate:
        return True, f"errors {level.error_rate:.0%} of {level.finished} ≥ {t.error_rate:.0%}"
    dispatched = level.dispatched_per_s
    if dispatched is None:  # no count from the dispatchers: what ended and was dropped is all that is known
        dispatched = (level.ended + level.dropped) / level.span_s
    unloaded = [x for x in [*lower, level] if x.e2e_p50_s is not None]
    request_s = min(unloaded, key=lambda x: x.load).e2e_p50_s if unloaded else 0.0
    row = pd.DataFrame({"dispatched_per_s": [dispatched], "served_per_s": [level.requests_per_s],
                        "span_s": [level.span_s], "request_s": [request_s]})  # fmt: skip
    sent = dispatched * level.span_s
    short = sent - level.completed
    allowed = max((1.0 - t.served_share) * sent, float(count_noise(row).iloc[0]))
    figures = (f"served {level.requests_per_s:.3g} of {dispatched:.3g} req/s dispatched (short {short:.1f} "
               f"requests, noise allows {allowed:.1f})")  # fmt: skip
    return (False, figures) if bool(served(row).iloc[0]) else (True, figures)


def judge_slo(level: LevelFigures, settings: SearchSettings, lower: Sequence[LevelFigures] = ()) -> tuple[bool, str]:
    """SLO search: (bad, why): attainment under the target (open loop: or the level was not served)."""
    attainment = level.attainment
    if attainment is None:
        return True, "no request of the level to judge"
    figures = f"SLO attainment {attainment:.1%} of {level.slo_judged} (target {settings.attainment:.1%})"
    if attainment < settings.attainment:
        return True, figures
    if settings.kind == "open":
        saturated, why = judge_open(level, lower)
        if saturated:
            return True, f"{figures}, but not served: {why}"
    return False, figures


@dataclass(slots=True)
class Search:
    """The decisions so far and the next load: doubling, then bisection (no clock)."""

    settings: SearchSettings
    levels: list[tuple[LevelFigures, bool | None, str]] = field(default_factory=list)
    good: float | None = None
    saturated: float | None = None
    stopped: str = ""

    def record(self, figures: LevelFigures) -> tuple[bool | None, str]:
        """Decide the level just run; None when it had too few completions (first time only)."""
        repeat_of_same = bool(self.levels) and self.levels[-1][1] is None and self.levels[-1][0].load == figures.load
        if figures.completed < MIN_COMPLETED and figures.error_rate < THRESHOLDS.error_rate and not repeat_of_same:
            decision: tuple[bool | None, str] = (None, f"{figures.completed} completions < {MIN_COMPLETED}: run again")
        else:
            lower = [f for f, sat, _ in self.levels if sat is False]
            if self.settings.slo is not None:
                decision = judge_slo(figures, self.settings, lower)
            elif self.settings.kind == "open":
                decision = judge_open(figures, lower)
            else:
                decision = judge(figures, lower)
            if decision[0]:
                self.saturated = figures.load if self.saturated is None else min(self.saturated, figures.load)
            else:
                self.good = figures.load if self.good is None else max(self.good, figures.load)
        self.levels.append((figures, *decision))
        return decision

    def _round(self, x: float) -> float:
        return float(round(x)) if self.settings.whole else float(f"{x:.3g}")

    def next_load(self) -> float | None:
        """The next level's load, or None (with ``stopped`` said) when the search is over."""
        s = self.settings
        if not self.levels:
            return s.start_load
        last, decision, _ = self.levels[-1]
        if len(self.levels) >= MAX_LEVELS:
            return self._stop(f"{MAX_LEVELS} levels run")
        if decision is None:
            return last.load
        slo = s.slo is not None
        if self.saturated is None:
            if self.good is not None and self.good >= s.max_load:
                return self._stop(f"{'SLOs met' if slo else 'not saturated'} up to the maximum {s.max_load:g}")
            return min(self._round(2 * (self.good or s.start_load)), s.max_load)
        if self.good is None:
            return self._stop(f"{'SLOs missed' if slo else 'saturated'} already at the start load")
        lo, hi = self.good, self.saturated
        if hi - lo <= max(s.precision * lo, 1.0 if s.whole else 0.0):
            return self._stop("bracket within the precision")
        mid = self._round((lo + hi) / 2)
        if not lo < mid < hi:
            return self._stop("bracket within the precision")
        return mid

    def _stop(self, why: str) -> None:
        self.stopped = why
        return None


@dataclass(slots=True)
class SearchRun:
    """The search on elapsed seconds since the shape started: the load now, the stages run so far.

    ``measure(load, start_s, end_s)`` (elapsed seconds) returns the figures of a level that just
    ended; ``on_level`` hears of every decision, once the next level is begun or the search is done
    (the runner writes ``search.json`` then and tells the open-loop dispatchers). With ``lead_s`` a
    decided level goes on that long before the next begins (a master's dispatchers hear of it first).
    """

    search: Search
    measure: Callable[[float, float, float], LevelFigures]
    on_level: Callable[[SearchRun], None] = lambda _run: None
    lead_s: float = 0.0
    starts_s: list[float] = field(default_factory=list)
    ends_s: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    done: bool = False

    @property
    def kind(self) -> str:
        return self.search.settings.kind

    def at(self, elapsed_s: float) -> float | None:
        """The load to hold at ``elapsed_s``; None once the search is over."""
        s = self.search.settings
        if self.done:
            return None
        if not self.loads:
            return self._begin(elapsed_s, s.start_load)
        start = self.starts_s[-1]
        if elapsed_s - start < s.stage_duration_s:
            return self.loads[-1]
        boundary = elapsed_s + self.lead_s
        self.ends_s.append(boundary)
        self.search.record(self.measure(self.loads[-1], start, elapsed_s))
        nxt = self.search.next_load()
        if nxt is not None and boundary + s.stage_duration_s > s.budget_s:
            nxt = self.search._stop(f"budget of {s.budget_s:g} s spent")
        if nxt is None:
            self.done = True
        else:
            self._begin(boundary, nxt)
        self.on_level(self)
        return nxt

    def _begin(self, elapsed_s: float, load: float) -> float:
        self.starts_s.append(elapsed_s)
        self.loads.append(load)
        return load

    def shape(self) -> Shape:
        """The levels as stages laid end to end (the running one at its planned duration)."""
        s = self.search.settings
        if not self.loads:
            return Shape([self._stage(0, s.stage_duration_s)])
        stages = []
        for i, start in enumerate(self.starts_s):
            end = self.ends_s[i] if i < len(self.ends_s) else start + s.stage_duration_s
            stages.append(self._stage(i, max(end - start, 1e-6)))
        return Shape(stages)

    def _stage(self, i: int, duration_s: float) -> Stage:
        s = self.search.settings
        load = self.loads[i] if self.loads else s.start_load
        return Stage(f"step-{i + 1}", duration_s, load, kind=s.kind, spawn_rate=s.spawn_rate)

    def record(self, origin_s: float) -> SearchFile:
        """``search.json`` as it stands, on the monotonic clock from ``origin_s``."""
        starts, ends = [origin_s + t for t in self.starts_s], [origin_s + t for t in self.ends_s]
        rows = [
            SearchLevel(f"step-{i + 1}", f.load, starts[i], ends[i], sat, why, f.to_json())
            for i, (f, sat, why) in enumerate(self.search.levels)
        ]
        wall = self.ends_s[-1] - self.starts_s[0] if self.ends_s else 0.0
        s = self.search
        return SearchFile(self.kind, s.settings.to_json(), rows, s.good, s.saturated, s.stopped, wall)
