"""The search's decisions and bisection on hand-made level figures (no Locust, no server)."""

from __future__ import annotations

import pytest

from loadgen.search import MIN_COMPLETED, LevelFigures, Search, SearchRun, SearchSettings, judge, level_figures
from satscope.errors import SatscopeError


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
    from loadgen.shape_options import ShapeOptions, build_shape, search_settings

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
