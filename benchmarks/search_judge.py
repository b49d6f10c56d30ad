"""How often an open-loop search misplaces the capacity: the point rule against the capacity yardstick.

A simulated server (``slots`` requests at once, each ``service_s`` ±5 %, first-come first-served)
under Poisson arrivals that follow the search's levels; the real ``satscope.loadgen.search`` decides
every level from request columns built as the load generator records them (the span measured up to
0.15 s before the level ends). A search is *off* when its bracket misses the capacity C = slots /
service_s as `tests/verdicts/test_search.py` judges it: the saturated end under C / 1.1, or the good
end's served share (0.9 × good, less the count noise of its span) above C.

    .venv/bin/python benchmarks/search_judge.py [--searches 300]

Prints one markdown row per scenario: both rules side by side on the same seeds.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from satscope.loadgen.search import LevelFigures, Search, SearchRun, SearchSettings, judge_open, level_figures

SCENARIOS = [  # (name, slots, service_s, start req/s)
    ("suite: 4 slots, 0.43 s, from 4 req/s", 4, 0.427, 4.0),
    ("8 slots, 0.6 s, from 4 req/s", 8, 0.6, 4.0),
    ("2 slots, 0.3 s, from 1 req/s", 2, 0.3, 1.0),
    ("4 slots, 1.3 s, from 1 req/s", 4, 1.3, 1.0),
]


class PointRuleSearch(Search):
    """The search as it was: every open-loop level by the served rule alone."""

    def record(self, figures: LevelFigures) -> tuple[bool | None, str]:
        lower = [f for f, sat, _ in self.levels if sat is False]
        decision = judge_open(figures, lower) if figures.completed >= 5 else (None, "too few")
        if self.levels and self.levels[-1][1] is None and decision[0] is None:
            decision = judge_open(figures, lower)
        self.levels.append((figures, *decision))
        self._bracket()
        return decision


def one_search(kind: type[Search], slots: int, service_s: float, start: float, seed: int) -> tuple[Search, bool]:
    rng = random.Random(seed)
    settings = SearchSettings("open", start, 64.0, 5.0, budget_s=40.0)
    records: list[tuple[float, float, float]] = []  # intended, first token, end
    free = [0.0] * slots
    pending = {"next": None}

    def arrive(load: float, t0: float, t1: float) -> None:
        t = pending["next"] if pending["next"] is not None else t0 + rng.expovariate(load)
        while t < t1:
            begin = max(t, heapq.heappop(free))
            end = begin + service_s * rng.uniform(0.95, 1.05)
            heapq.heappush(free, end)
            records.append((t, begin + 0.05, end))
            t += rng.expovariate(load)
        pending["next"] = t

    def measure(load: float, a: float, b: float) -> LevelFigures:
        to = max(b - 0.15, a + 0.6 * (b - a))
        done = [r for r in records if r[2] < to]
        cols = {"intended_start": [r[0] for r in done], "first_token": [r[1] for r in done],
                "end": [r[2] for r in done], "status": ["ok"] * len(done), "output_tokens": [8] * len(done),
                "output_chunks": [8] * len(done)}  # fmt: skip
        return level_figures(cols, load, a, b, to, lambda x, y: sum(1 for r in records if x <= r[0] < y))

    run = SearchRun(kind(settings), measure)
    t, load = 0.0, run.at(0.0)
    while load is not None:
        arrive(load, t, t + 0.1)
        t += 0.1
        load = run.at(t)
    s = run.search
    capacity = slots / service_s
    good = next((f for f, sat, _ in s.levels if s.good is not None and f.load == s.good and sat is False), None)
    off = s.saturated is None or capacity > 1.1 * s.saturated or good is None
    if good is not None:
        noise = 2 * math.sqrt(1 + good.load * (good.e2e_p50_s or 0.0)) / good.span_s
        off = off or 0.9 * good.load - noise > capacity
    return s, off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--searches", type=int, default=300)
    ap.add_argument(
        "--overload-noises",
        type=float,
        default=None,
        help="count noises past the allowance that make a level overloaded (default: the module's)",
    )
    args = ap.parse_args()
    n = args.searches
    if args.overload_noises is not None:
        from satscope.loadgen import _open_judge

        _open_judge.OVERLOAD_NOISES = args.overload_noises
    from satscope.loadgen._open_judge import OVERLOAD_NOISES

    print(f"{n} searches a scenario, 5 s levels, budget 40 s, overloaded past {OVERLOAD_NOISES:g} noises\n")
    print("| scenario | capacity req/s | point rule: off | levels | yardstick: off | levels |")
    print("|---|---|---|---|---|---|")
    for name, slots, service_s, start in SCENARIOS:
        row = [name, f"{slots / service_s:.2f}"]
        for kind in (PointRuleSearch, Search):
            results = [one_search(kind, slots, service_s, start, seed) for seed in range(n)]
            off = sum(o for _, o in results)
            levels = sum(len(s.levels) for s, _ in results) / n
            row += [f"{off}/{n} ({off / n:.0%})", f"{levels:.1f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
