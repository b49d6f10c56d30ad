"""The search's decisions and bisection on hand-made level figures (no Locust, no server)."""

from __future__ import annotations

import time

import pytest

from satscope.errors import SatscopeError
from satscope.loadgen.search import MIN_COMPLETED, LevelFigures, Search, SearchRun, SearchSettings, judge, level_figures


def fig(load: float, rps: float, ttft: float, completed: int = 50, errors: int = 0) -> LevelFigures:
    return LevelFigures(load, 3.0, completed, completed + errors, errors, rps, rps * 16, ttft, ttft + 0.5)


def server(capacity: int, per_user_rps: float = 2.0, base_ttft: float = 0.05) -> dict:
    """A server with `capacity` slots: throughput stops at capacity, TTFT grows with the queue."""

    def at(load: float) -> LevelFigures:
        over = max(load - capacity, 0)
        return fig(load, per_user_rps * min(load, capacity), base_ttft + 0.5 * over / capacity)

    return {"at": at}


def run_search(capacity: int, max_users: float, start: float = 1, precision: float = 0.1,
               budget: float = 1000) -> Search:  # fmt: skip
    s = Search(SearchSettings("closed", start, max_users, 3.0, precision, budget))
    at = server(capacity)["at"]
    while (load := s.next_load()) is not None:
        s.record(at(load))
    return s


@pytest.mark.parametrize("capacity", [1, 2, 4, 8, 16])
def test_the_bracket_starts_at_the_capacity_on_the_doubling_path(capacity: int) -> None:
    s = run_search(capacity, 256)
    assert (s.good, s.saturated) == (capacity, capacity + 1)
    assert len(s.levels) <= 10
    assert s.stopped == "bracket within the precision"


@pytest.mark.parametrize(("capacity", "bracket"), [(3, (4, 5)), (5, (6, 7)), (11, (12, 13)), (24, (34, 36))])
def test_between_doublings_the_knee_rule_passes_a_level_that_still_gains_half(capacity: int, bracket: tuple) -> None:
    # the rule's resolution: a level L above the last good level lo passes while the capacity is past
    # the middle of [lo, L] (its gain is >= min_efficiency x the load gain), as the report's knee would
    s = run_search(capacity, 256)
    assert (s.good, s.saturated) == bracket
    assert capacity <= s.good < 1.5 * capacity


def test_four_slots_take_six_levels_doubling_then_bisecting() -> None:
    s = run_search(4, 32)
    assert [f.load for f, _, _ in s.levels] == [1, 2, 4, 8, 6, 5]
    assert [sat for _, sat, _ in s.levels] == [False, False, False, True, True, True]
    assert (s.good, s.saturated) == (4, 5)


def test_precision_sets_the_final_bracket_for_large_loads() -> None:
    coarse = run_search(128, 256, start=32, precision=0.3)
    fine = run_search(128, 256, start=32, precision=0.02)
    assert [f.load for f, _, _ in coarse.levels] == [32, 64, 128, 256, 192, 160]
    assert (coarse.good, coarse.saturated) == (128, 160)
    # 132 passes: 4 users over 128 slots queue for 16 ms here, under the 20 ms latency-rise floor
    assert len(fine.levels) == 10 and (fine.good, fine.saturated) == (132, 134)


def test_the_level_cap_stops_a_search_that_would_not_converge() -> None:
    s = run_search(100, 512, precision=0.001)
    assert len(s.levels) == 12 and s.stopped == "12 levels run"


def test_not_saturated_up_to_the_maximum_stops_there() -> None:
    s = run_search(100, 12)
    assert [f.load for f, _, _ in s.levels] == [1, 2, 4, 8, 12]
    assert (s.good, s.saturated) == (12, None)
    assert "maximum" in s.stopped


def test_errors_saturate_even_the_first_level() -> None:
    s = Search(SearchSettings("closed", 2, 32, 3.0))
    s.record(fig(2, 4.0, 0.05, completed=10, errors=10))
    assert s.levels[0][1] is True and "errors" in s.levels[0][2]
    assert s.next_load() is None and s.stopped == "saturated already at the start load"


def test_too_few_completions_repeat_the_level_once() -> None:
    s = Search(SearchSettings("closed", 1, 32, 3.0))
    assert s.record(fig(1, 1.0, 0.05, completed=MIN_COMPLETED - 1))[0] is None
    assert s.next_load() == 1  # once more
    assert s.record(fig(1, 1.0, 0.05, completed=MIN_COMPLETED - 1))[0] is False  # then decided anyway
    assert s.next_load() == 2


def test_flat_throughput_without_a_latency_rise_is_not_saturated() -> None:
    saturated, why = judge(fig(8, 8.0, 0.05), [fig(4, 8.0, 0.05)])
    assert not saturated and "did not rise" in why
    saturated, why = judge(fig(8, 8.0, 0.5), [fig(4, 8.0, 0.05)])
    assert saturated and "efficiency 0.00" in why


def test_the_best_lower_level_is_the_reference_not_the_last() -> None:
    # 6 users scaled well against 5 (noisy low) but not against 4, the best lower level
    lower = [fig(4, 8.0, 0.05), fig(5, 6.0, 0.05)]
    assert judge(fig(6, 8.2, 0.4), lower)[0]


def test_the_budget_ends_the_run_and_levels_are_stages() -> None:
    calls: list[tuple[float, float, float]] = []
    at = server(4)["at"]

    def measure(load: float, start: float, end: float) -> LevelFigures:
        calls.append((load, start, end))
        return at(load)

    run = SearchRun(Search(SearchSettings("closed", 1, 32, 3.0, 0.1, budget_s=10.0)), measure)
    loads = [run.at(t) for t in (0.0, 1.0, 3.0, 6.0, 9.0)]
    assert loads == [1, 1, 2, 4, None]  # a fourth level would end past 10 s
    assert [c[:2] for c in calls] == [(1, 0.0), (2, 3.0), (4, 6.0)]
    assert [s.name for s in run.shape().stages] == ["step-1", "step-2", "step-3"]
    record = run.record(100.0)
    assert record.stopped == "budget of 10 s spent" and record.wall_s == 9.0
    assert [lv.start_s for lv in record.levels] == [100.0, 103.0, 106.0]


def test_level_figures_from_request_columns() -> None:
    cols = {
        "intended_start": [0.5, 1.0, 2.0, 9.0],
        "first_token": [0.6, 1.3, None, 9.1],
        "end": [1.5, 2.0, 2.5, 9.5],
        "status": ["ok", "ok", "timeout", "ok"],
        "output_tokens": [10, None, None, 10],
        "output_chunks": [10, 12, 0, 10],
    }
    f = level_figures(cols, 2, -1.0, 3.0, 3.0)  # its first quarter, [-1, 0), left out
    assert (f.completed, f.finished, f.errors) == (2, 3, 1)
    assert f.requests_per_s == pytest.approx(2 / 3) and f.output_tokens_per_s == pytest.approx(22 / 3)
    assert f.ttft_p99_s == pytest.approx(0.1 + 0.99 * 0.2)
    assert f.error_rate == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": 0}, "--precision must be > 0"),
        ({"precision": -1}, "--precision must be > 0"),
        ({"start_load": 64}, "above the search's maximum"),
        ({"budget_s": 2}, "shorter than one level"),
    ],
)
def test_bad_settings_are_one_line(kwargs: dict, message: str) -> None:
    base = {"kind": "closed", "start_load": 1, "max_load": 32, "stage_duration_s": 3.0, "budget_s": 60}
    with pytest.raises(SatscopeError, match=message):
        SearchSettings(**{**base, **kwargs})


def test_the_search_options_make_an_envelope_and_settings() -> None:
    from satscope.loadgen.shape_options import ShapeOptions, build_shape, search_settings

    options = ShapeOptions(shape="search", users=32, duration_s=80, start_load=2)
    envelope = build_shape(options)
    assert [(s.name, s.duration_s, s.load) for s in envelope.stages] == [("search", 80, 32)]
    settings = search_settings(options)
    assert settings is not None
    assert (settings.start_load, settings.max_load, settings.budget_s, settings.stage_duration_s) == (2, 32, 80, 10)
    budgeted = search_settings(ShapeOptions(shape="search", users=32, budget_s=120, stage_duration_s=30))
    assert budgeted is not None and (budgeted.budget_s, budgeted.stage_duration_s) == (120, 30)
    assert build_shape(ShapeOptions(shape="search", users=32, budget_s=120)).duration_s == 120
    assert search_settings(ShapeOptions(users=32)) is None


def open_fig(load: float, served: float, dispatched: float, span: float = 4.0, e2e: float = 0.3) -> LevelFigures:
    n_served, n_sent = round(served * span), round(dispatched * span)
    return LevelFigures(load, span, n_served, n_served, 0, served, served * 8, 0.05, e2e, e2e, n_served, 0, n_sent)


def test_open_loop_levels_are_judged_by_what_they_served_beyond_the_count_noise() -> None:
    from satscope.loadgen.search import judge_open

    lowest = open_fig(2, 2.0, 2.0)
    # 4 s at 10 req/s, 0.3 s requests: the noise allows 2 * sqrt(1 + 10 * 0.3) = 4 requests short
    assert not judge_open(open_fig(10, 9.25, 10.0), [lowest])[0]  # 3 short: noise
    saturated, why = judge_open(open_fig(10, 8.0, 10.0), [lowest])  # 8 short
    assert saturated and "served 8 of 10 req/s dispatched (short 8.0 requests, noise allows 4.0)" in why
    # the allowance comes from the unloaded request time (the lowest level's), not the queued one's
    assert judge_open(open_fig(10, 8.0, 10.0, e2e=5.0), [lowest])[0]
    assert judge_open(open_fig(10, 2.0, 10.0), [])[0]
    assert not judge_open(open_fig(0.1, 0.0, 0.0), [])[0]  # nothing to judge: not a saturated server
    errors = LevelFigures(4, 4.0, 8, 16, 8, 2.0, 16.0, 0.05, 0.3, 0.3, 16, 0, 16)
    assert judge_open(errors, [lowest]) == (True, "errors 50% of 16 ≥ 5%")


def open_server(capacity: float, span: float) -> Search:
    """An open-loop search against a server that serves at most ``capacity`` req/s."""
    s = Search(SearchSettings("open", 1.0, 64.0, span, 0.1, 1000))
    while (load := s.next_load()) is not None:
        s.record(open_fig(load, min(load, capacity), load, span))
    return s


@pytest.mark.parametrize("capacity", [3.0, 7.3, 13.0])
def test_an_open_loop_search_brackets_the_capacity_in_rates(capacity: float) -> None:
    s = open_server(capacity, span=10.0)
    assert s.good is not None and s.saturated is not None
    assert s.good <= capacity * 1.1 and s.saturated >= capacity, [(f.load, sat) for f, sat, _ in s.levels]
    assert s.saturated - s.good <= 0.1 * s.good and s.stopped == "bracket within the precision"


def test_the_open_loop_resolution_is_the_count_noise_of_the_capacity_measure() -> None:
    # an overload measured 3 req/s; within its count noise, sqrt(1 + 3 * 0.3) / 4 s = 0.34 req/s, a
    # level's own count decides: 3.25 req/s is 1 request short, served; 3.5 is above the noise
    s = open_server(3.0, span=4.0)
    assert (s.good, s.saturated) == (3.25, 3.5)
    assert s.capacity == (3.0, 4) and abs(s.capacity_noise - 0.345) < 0.001  # level 5: 8 req/s


def test_a_short_level_waits_for_an_overload_to_measure_the_capacity() -> None:
    # 4 s at 4 req/s, 0.3 s requests: 4 short is over the allowance 2.97 (the point rule's
    # saturation) but within it and twice the noise again: the search doubles past it
    s = Search(SearchSettings("open", 2.0, 64.0, 4.0, 0.1, 1000))
    s.record(open_fig(2, 2.0, 2.0))
    bad, why = s.record(open_fig(4, 3.0, 4.0))
    assert bad is None and why.endswith("within the noise of the allowance, a higher level measures the capacity")
    assert s.pending == [1] and (s.good, s.saturated) == (2, None) and s.next_load() == 8
    # 8 req/s served 5: 12 short, over 3.69 + 2 * 3.69: an overload, the server's capacity measured
    s.record(open_fig(8, 5.0, 8.0))
    assert s.capacity == (5.0, 2) and s.pending == []
    four, eight = s.levels[1], s.levels[2]
    assert four[1] is False and four[2].startswith(
        "4 req/s offered, within the 5 req/s served when overloaded (level 3"
    )
    assert eight[1] is True and (s.good, s.saturated) == (4, 8) and s.next_load() == 6
    s.record(open_fig(6, 5.0, 6.0))  # its own span: 4 short, within the noise; 6 is above the capacity
    assert s.levels[-1][1] is True and s.levels[-1][2].startswith("6 req/s offered, above the 5 req/s")


def test_a_short_level_is_served_below_a_served_one_or_saturated_when_nothing_overloads() -> None:
    s = Search(SearchSettings("open", 2.0, 8.0, 4.0, 0.1, 1000))
    s.record(open_fig(2, 1.5, 2.0))  # 2 short, within the noise 2.53: served
    s.record(open_fig(4, 3.0, 4.0))  # short: waits
    assert s.pending == [1]
    s.record(open_fig(8, 7.5, 8.0))  # served: so is the level below it
    assert [sat for _, sat, _ in s.levels] == [False, False, False] and s.next_load() is None
    assert s.stopped == "not saturated up to the maximum 8"
    top = Search(SearchSettings("open", 2.0, 4.0, 4.0, 0.1, 1000))
    top.record(open_fig(2, 2.0, 2.0))
    top.record(open_fig(4, 3.0, 4.0))  # short at the maximum: no overload can measure the capacity
    assert top.next_load() == 3 and top.levels[1][1] is True
    assert top.levels[1][2].endswith("the served rule (no overload measured the capacity)")


def slo_fig(load: float, attainment: float, judged: int = 40) -> LevelFigures:
    met = round(attainment * judged)
    return LevelFigures(load, 3.0, judged, judged, 0, 4.0, 32.0, 0.1, 0.4, 0.3, judged, 0, None, judged, met)


def test_an_slo_search_brackets_the_highest_load_meeting_the_attainment() -> None:
    from satscope.loadgen.search import judge_slo

    settings = SearchSettings("closed", 1, 32, 3.0, slos={"ttft_s": 0.2, "itl_s": None, "e2e_s": None},
                              attainment=0.9)  # fmt: skip
    assert judge_slo(slo_fig(4, 0.95), settings) == (False, "SLO attainment 95.0% of 40 (target 90.0%)")
    assert judge_slo(slo_fig(5, 0.85), settings)[0]
    s = Search(settings)
    while (load := s.next_load()) is not None:
        s.record(slo_fig(load, 1.0 if load <= 6 else 0.5))
    assert [f.load for f, _, _ in s.levels] == [1, 2, 4, 8, 6, 7]
    assert (s.good, s.saturated, s.stopped) == (6, 7, "bracket within the precision")
    # an open-loop SLO search also needs the level served
    open_settings = SearchSettings("open", 1, 32, 3.0, slos={"e2e_s": 1.0}, attainment=0.9)
    starved = LevelFigures(8, 4.0, 16, 16, 0, 4.0, 32.0, 0.1, 0.4, 0.3, 16, 0, 32, 16, 16)
    bad, why = judge_slo(starved, open_settings, [open_fig(1, 1.0, 1.0)])
    assert bad and why.startswith("SLO attainment 100.0% of 16 (target 90.0%), but not served: served 4 of 8")
    missed = Search(settings)
    missed.record(slo_fig(1, 0.5))
    assert missed.next_load() is None and missed.stopped == "SLOs missed already at the start load"


def test_level_figures_judge_slos_after_the_backlog_and_count_dispatches() -> None:
    from satscope.reports._goodput import Slos

    # level [0, 8): settle to 2; one request of the level before ends at 3 (a backlog)
    cols = {
        "intended_start": [-1.0, 2.5, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0],
        "first_token": [2.9, 2.9, 3.6, 4.1, 4.6, 5.1, 5.6, None],
        "end": [3.0, 3.0, 3.7, 4.2, 4.7, 5.2, 5.7, 6.1],
        "status": ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "dropped"],
        "output_tokens": [4] * 8,
        "output_chunks": [4, 4, 4, 4, 4, 4, 4, 0],
    }
    f = level_figures(cols, 8, 0.0, 8.0, 8.0, dispatched=lambda a, b: 99 if (a, b) == (2.0, 8.0) else -1,
                      slos=Slos(ttft_s=0.2))  # fmt: skip
    assert f.dispatched == 99 and f.dispatched_per_s == pytest.approx(99 / 6)
    assert (f.dropped, f.ended) == (1, 7)
    # judged from 3.0 (the backlog's end): 6 requests, the dropped one missed; 2.5 (TTFT 0.4) left out
    assert (f.slo_judged, f.slo_met) == (6, 5)
    few = level_figures(cols, 8, 0.0, 8.0, 8.0, slos=Slos(ttft_s=0.2), dispatched=None)
    cols["end"][0] = 5.9  # the backlog lasts: too few after it, the level is judged from its settle
    late = level_figures(cols, 8, 0.0, 8.0, 8.0, slos=Slos(ttft_s=0.2))
    assert few.dispatched is None and (late.slo_judged, late.slo_met) == (7, 5)


def test_next_arrival_follows_the_levels_known_and_redraws_at_a_boundary() -> None:
    import random

    from satscope.loadgen.arrivals import next_arrival

    rng = random.Random(1)
    levels = [(0.0, 2.0)]
    t, times = 0.0, []
    while (t := next_arrival(t, levels, "constant", rng)) < 3.0:
        times.append(t)
        if t >= 1.0 and len(levels) == 1:
            levels.append((1.2, 10.0))  # announced at 1.0: from 1.2 at 10/s
    assert times[:2] == [0.5, 1.0]
    assert times[2] == pytest.approx(1.3) and times[3] == pytest.approx(1.4)  # redrawn from 1.2, not 1.5
    assert len(times) == 2 + 17  # 1.3, 1.4, … 2.9
    # Poisson at 50/s over 20 s: the count within 4 sigma
    n, t = 0, 0.0
    while (t := next_arrival(t, [(0.0, 50.0), (10.0, 50.0)], "poisson", rng, share=0.5)) < 20.0:
        n += 1
    assert abs(n - 500) < 4 * 500**0.5


def test_an_open_loop_search_has_rate_options_and_the_slo_flags() -> None:
    from satscope.loadgen.shape_options import ShapeOptions, check_flag_combination, search_settings

    settings = search_settings(ShapeOptions(shape="search", rate=20.0, start_load=0.5, budget_s=60,
                                            slos=("ttft=500ms",), slo_attainment=0.95))  # fmt: skip
    assert settings is not None and (settings.kind, settings.start_load, settings.max_load) == ("open", 0.5, 20.0)
    assert settings.slo is not None and settings.slo.ttft_s == 0.5 and settings.attainment == 0.95
    with pytest.raises(SatscopeError, match="--slo-attainment is the share"):
        check_flag_combination("search", False, {"--slo-attainment"})
    with pytest.raises(SatscopeError, match="--slo-attainment is only used with --shape search"):
        check_flag_combination("step", True, {"--slo-attainment", "--slo"})
    with pytest.raises(SatscopeError, match="--slo-attainment must be in"):
        search_settings(ShapeOptions(shape="search", users=8, slos=("ttft=1",), slo_attainment=1.5))


def test_dispatches_travel_to_the_master_and_levels_wake_a_waiting_dispatcher() -> None:
    import gevent

    from satscope.loadgen._level_feed import DispatchLog, LevelFeed

    worker, master = DispatchLog(), DispatchLog()
    for t in (1.0, 2.0, 3.0):
        worker.add(t)
    master.apply(worker.message())
    worker.add(4.0)
    master.apply(worker.message())  # only the new one
    assert list(master.times) == [1.0, 2.0, 3.0, 4.0] and master.count(2.0, 4.0) == 2
    master.prune(3.0)
    assert list(master.times) == [3.0, 4.0]
    feed = LevelFeed(2.0)
    seen = feed.version
    gevent.spawn_later(0.05, feed.begin, 10.0, 4.0)
    began = time.perf_counter()
    assert feed.wait(5.0, seen) and feed.levels[-1] == (10.0, 4.0)
    assert time.perf_counter() - began < 2.0  # woken by the level, not by the 5 s timeout
    assert not feed.wait(0.01, feed.version)
