"""``--shape search``: find the saturation point without guessing it (pure: no clock, no gevent).

The search starts at ``start_load``, doubles the load until a level is saturated (or the maximum is
reached), then bisects between the last good and the first saturated level until the bracket is
within ``precision`` (relative width; for users one user), the budget is spent, or ``MAX_LEVELS``
ran. Each level is a hold stage of ``stage_duration_s``; its figures come from the records of the
requests it dispatched (``satscope/loadgen/level_figures.py``) and :func:`judge` decides, with the knee rule of
``satscope/reports/_knee.py`` and its thresholds (``satscope/reports/_thresholds.py``):

- saturated when errors are at least ``error_rate`` of the requests it dispatched that finished;
- closed loop: saturated when its throughput gain over the best lower level is under
  ``min_efficiency`` × its load gain while a tail latency (TTFT or E2E p99 from the intended send)
  rose by ``min_latency_rise`` × and ``min_latency_rise_s``, or, with the server's own scrapes in
  the span (``.server-live.jsonl``, the probes' live lines: ``satscope/loadgen/server_live.py``)
  showing it at its limit (requests kept waiting in the median scrape, or preemptions), under
  ``queue_efficiency`` × its load gain;
- open loop: saturated when it did not serve what it dispatched beyond the count noise (the
  open-loop rule ``satscope.reports._knee.served``: the dispatchers' own count of what they dispatched in
  the span, dropped dispatches included, against the requests completed ok in it), judged against
  the capacity an overloaded level measured (``satscope/loadgen/_open_judge.py``);
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
from satscope.loadgen._open_judge import OpenEvidence, evidence, judge_open
from satscope.loadgen.level_figures import MIN_COMPLETED, LevelFigures, level_figures
from satscope.loadgen.shapes import Shape, Stage
from satscope.reports._goodput import Slos
from satscope.reports._thresholds import THRESHOLDS, Thresholds
from satscope.search_file import SearchFile, SearchLevel

__all__ = ["MAX_LEVELS", "MIN_COMPLETED", "LevelFigures", "Search", "SearchRun", "SearchSettings", "judge",
           "judge_open", "judge_slo", "level_figures", "server_at_limit"]  # fmt: skip

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


def _latency_rose(now: LevelFigures, before: LevelFigures, t: Thresholds) -> str | None:
    for name in ("ttft_p99_s", "e2e_p99_s"):
        a, b = getattr(now, name), getattr(before, name)
        if a is not None and b is not None and b > 0 and a >= t.min_latency_rise * b and a - b >= t.min_latency_rise_s:
            return f"{name.removesuffix('_s').replace('_', ' ')} {b:.3g} → {a:.3g} s"
    return None


def server_at_limit(level: LevelFigures) -> str | None:
    """Why the server's own scrapes say it was at its limit in the level, or None: it kept requests
    waiting for a slot in most of them (the median scrape), or it preempted (its KV cache was full).
    A server that keeps up also holds a new request a step before it runs it (at 50 requests/s and
    40 ms steps, one in the median scrape), so :func:`judge` takes it as saturation only while the
    throughput did not keep up with the load either (``queue_efficiency``)."""
    if level.server_waiting_p50 is not None and level.server_waiting_p50 >= 1:
        return (f"the server kept requests waiting ({level.server_waiting_p50:g} in the median of its "
                f"{level.server_samples} scrapes): at its limit")  # fmt: skip
    if level.server_preemptions_per_s_max:
        return f"the server preempted requests ({level.server_preemptions_per_s_max:.3g}/s): its KV cache was full"
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
    limit = server_at_limit(level)
    if limit and efficiency < t.queue_efficiency:
        return True, f"{limit}, efficiency {efficiency:.2f} vs {best.load:g} (< {t.queue_efficiency:g})"
    rose = _latency_rose(level, best, t)
    figures = f"efficiency {efficiency:.2f} vs {best.load:g} (< {t.min_efficiency:g} saturates)"
    if efficiency < t.min_efficiency and rose:
        return True, f"{figures}, {rose}"
    return False, figures + ("" if rose else ", tail latency did not rise")


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
    capacity: tuple[float, int] | None = None  # open loop: req/s served when overloaded, at which level
    evidence: list[OpenEvidence | None] = field(default_factory=list)  # open loop (not SLO): per level

    def record(self, figures: LevelFigures) -> tuple[bool | None, str]:
        """Decide the level just run; None when it had too few completions (first time only), or,
        open loop, while it waits for a capacity measure (``satscope/loadgen/_open_judge.py``)."""
        repeat_of_same = bool(self.levels) and self.levels[-1][1] is None and self.levels[-1][0].load == figures.load
        ev: OpenEvidence | None = None
        if figures.completed < MIN_COMPLETED and figures.error_rate < THRESHOLDS.error_rate and not repeat_of_same:
            decision: tuple[bool | None, str] = (None, f"{figures.completed} completions < {MIN_COMPLETED}: run again")
        else:
            lower = [f for f, sat, _ in self.levels if sat is False]
            if self.settings.slo is not None:
                decision = judge_slo(figures, self.settings, lower)
            elif self.settings.kind == "open":
                ev = evidence(figures, lower)
                decision = (ev.saturated, ev.why)
                if ev.kind == "overloaded" and (self.capacity is None or ev.served_per_s > self.capacity[0]):
                    self.capacity = (ev.served_per_s, len(self.levels))
            else:
                decision = judge(figures, lower)
        self.levels.append((figures, *decision))
        self.evidence.append(ev)
        if ev is not None:
            self._rejudge()
        self._bracket()
        return self.levels[-1][1], self.levels[-1][2]

    @property
    def pending(self) -> list[int]:
        """Open loop: the short levels waiting for a capacity measure (their decision is None)."""
        return [i for i, ev in enumerate(self.evidence) if ev is not None and self.levels[i][1] is None]

    def _rejudge(self) -> None:
        """Open loop: every level neither overloaded nor failing by errors, judged by its offered
        rate against the capacity an overload measured; without one, a short level waits unless a
        higher level was served."""
        for i, ev in enumerate(self.evidence):
            if ev is None or ev.kind in ("overloaded", "errors", "idle"):
                continue
            f = self.levels[i][0]
            near = self.capacity is not None and abs(f.load - self.capacity[0]) <= self.capacity_noise
            if self.capacity is not None and not (near and ev.kind != "short"):
                cap, at = self.capacity
                over = f.load > cap
                rel = "above" if over else "within"
                why = (f"{f.load:g} req/s offered, {rel} the {cap:.3g} req/s served when overloaded "
                       f"(level {at + 1}, {self.levels[at][0].load:g} req/s); its span: {ev.why}")  # fmt: skip
                self.levels[i] = (f, over, why)
            elif ev.kind == "short":
                served_above = any(g.load > f.load and sat is False and self.evidence[j] is not None
                                   for j, (g, sat, _) in enumerate(self.levels))  # fmt: skip
                self.levels[i] = (
                    (f, False, f"{ev.why}; a higher level was served")
                    if served_above
                    else (f, None, f"{ev.why}: within the noise of the allowance, a higher level measures the capacity")
                )
            else:
                self.levels[i] = (f, False, ev.why)

    @property
    def capacity_noise(self) -> float:
        """req/s: the count noise of the capacity measure, from the requests in service at its span's
        two ends (capacity × the unloaded request time, the lowest level's median E2E); 0 without one."""
        if self.capacity is None:
            return 0.0
        cap, at = self.capacity
        timed = [f for f, _, _ in self.levels if f.e2e_p50_s is not None]
        request_s = (min(timed, key=lambda f: f.load).e2e_p50_s or 0.0) if timed else 0.0
        return math.sqrt(1.0 + cap * request_s) / self.levels[at][0].span_s

    def _settle(self) -> None:
        """Open loop, no overload measured: the short levels left take the point rule (saturated)."""
        for i in self.pending:
            ev = self.evidence[i]
            assert ev is not None
            self.levels[i] = (self.levels[i][0], True, f"{ev.why}: the served rule (no overload measured the capacity)")
        self._bracket()

    def _bracket(self) -> None:
        good = [f.load for f, sat, _ in self.levels if sat is False]
        bad = [f.load for f, sat, _ in self.levels if sat is True]
        self.good, self.saturated = (max(good) if good else None), (min(bad) if bad else None)

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
        pending = self.pending
        if decision is None and len(self.levels) - 1 not in pending:
            return last.load
        slo = s.slo is not None
        if self.saturated is None and pending:
            top = max(self.levels[i][0].load for i in pending)
            if top < s.max_load:  # double past a short level: an overload will measure the capacity
                return min(self._round(2 * top), s.max_load)
            self._settle()
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
        self._settle()
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
        cap = s.capacity[0] if s.capacity is not None else None
        return SearchFile(self.kind, s.settings.to_json(), rows, s.good, s.saturated, s.stopped, wall, cap)
