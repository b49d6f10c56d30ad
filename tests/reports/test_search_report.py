"""A run with search.json: the summary's search block, the verdict's bracket and the HTML's path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from satscope.reports import analyze, build_report
from satscope.run_format import write_json_atomic
from satscope.search_file import SEARCH_FILE, SearchFile, SearchLevel


def _search(origin: float) -> SearchFile:
    loads = [(1, False), (2, False), (4, False), (8, True), (6, True), (5, True)]
    levels = [
        SearchLevel(f"step-{i + 1}", float(load), origin + 3 * i, origin + 3 * i + 3, sat, f"reason {i}", {})
        for i, (load, sat) in enumerate(loads)
    ]
    return SearchFile("closed", {"max_load": 32.0}, levels, 4.0, 5.0, "bracket within the precision", 18.0)


def test_search_json_round_trips() -> None:
    found = _search(100.0)
    assert SearchFile.from_json(json.loads(json.dumps(found.to_json()))) == found


def test_the_report_carries_the_bracket_and_draws_the_path(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    assert analyze(run)["search"] is None  # not a search: null, and nothing said
    origin = json.loads((run / "run.json").read_text())["clock"]["monotonic_origin_s"]
    write_json_atomic(run / SEARCH_FILE, _search(origin + 2.0).to_json())
    build_report(run)
    summary = json.loads((run / "summary.json").read_text())
    block = summary["search"]
    assert (block["good"], block["saturated"], block["levels_run"], block["unit"]) == (4.0, 5.0, 6, "users")
    assert block["levels"][3] == {"stage": "step-4", "load": 8.0, "start_s": 11.0, "end_s": 14.0, "saturated": True,
                                  "reason": "reason 3"}  # fmt: skip
    assert "The search saturates between 4 and 5 users (6 levels, 18 s)." in summary["verdict"]
    html = (run / "report.html").read_text()
    assert "Search path" in html and "fig-search" in html
    assert "Search path: load per level" in html and "too few to decide" not in html  # no level was repeated
    assert "6 levels in 18 s; last good 4, first saturated 5 users" in html


def test_no_bracket_when_nothing_saturated(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    found = _search(0.0)
    found.good, found.saturated, found.stopped = 32.0, None, "not saturated up to the maximum 32"
    write_json_atomic(run / SEARCH_FILE, found.to_json())
    assert "The search found no saturation up to 32 users" in analyze(run)["verdict"]


def test_an_interrupted_search_says_so(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    found = _search(0.0)
    found.levels, found.good, found.saturated, found.stopped = found.levels[:2], 2.0, None, "interrupted"
    write_json_atomic(run / SEARCH_FILE, found.to_json())
    assert "The search ended (interrupted) before a level saturated, the last good 2 users" in analyze(run)["verdict"]


def test_a_bracket_cut_short_says_why(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    found = _search(0.0)
    found.levels, found.good, found.saturated, found.stopped = found.levels[:4], 4.0, 8.0, "budget of 12 s spent"
    write_json_atomic(run / SEARCH_FILE, found.to_json())
    verdict = analyze(run)["verdict"]
    assert "The search saturates between 4 and 8 users (4 levels, 18 s; budget of 12 s spent)." in verdict


def test_a_bracket_the_stage_figures_disagree_with_says_why() -> None:
    from satscope.reports._search import bracket_sentence

    search = {"unit": "users", "good": 4.0, "saturated": 5.0, "levels_run": 6, "wall_s": 18.0,
              "stopped": "bracket within the precision"}  # fmt: skip
    agree = bracket_sentence(search, {"found": True, "offered_load": 4.0})
    assert agree == " The search saturates between 4 and 5 users (6 levels, 18 s)."
    for disagree in ({"found": True, "offered_load": 8.0}, {"found": False, "offered_load": 8.0}):
        text = bracket_sentence(search, disagree)
        assert text.startswith(agree) and "lengthen --stage-duration" in text


def test_an_open_loop_bracket_names_the_capacity_it_was_judged_by() -> None:
    from satscope.reports._search import bracket_sentence

    search = {"unit": "req/s", "good": 9.0, "saturated": 9.5, "levels_run": 7, "wall_s": 35.0,
              "stopped": "bracket within the precision", "capacity_per_s": 9.3712}  # fmt: skip
    text = bracket_sentence(search, {"found": True, "offered_load": 12.0})
    assert text.startswith(" The search saturates between 9 and 9.5 req/s (7 levels, 35 s). An overloaded level "
                           "served at most 9.37 req/s: the search judged its levels by it.")  # fmt: skip
    assert "judged them by the rate an overload served" in text  # the stage figures put it at 12: why they differ


def test_an_slo_search_names_the_max_goodput_load(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    found = _search(0.0)
    found.kind = "open"
    found.settings = {"max_load": 32.0, "slos": {"ttft_s": 0.5, "itl_s": 0.05, "e2e_s": None}, "attainment": 0.99}
    write_json_atomic(run / SEARCH_FILE, found.to_json())
    build_report(run)
    summary = json.loads((run / "summary.json").read_text())
    block = summary["search"]
    assert (block["goal"], block["attainment"], block["unit"]) == ("slo", 0.99, "req/s")
    sentence = ("Max goodput load between 4 and 5 req/s (99% of requests within TTFT ≤ 0.5 s, ITL ≤ 0.05 s; "
                "6 levels, 18 s).")  # fmt: skip
    assert sentence in summary["verdict"] and "The search saturates" not in summary["verdict"]
    html = (run / "report.html").read_text()
    assert "the max goodput load: last level with 99% of requests within TTFT ≤ 0.5 s, ITL ≤ 0.05 s 4" in html


def test_an_slo_search_without_a_bracket_says_which_side_it_ended() -> None:
    from satscope.reports._search import bracket_sentence

    search = {"unit": "users", "goal": "slo", "slos": {"e2e_s": 2.0}, "attainment": 0.9, "good": 32.0,
              "saturated": None, "levels_run": 6, "wall_s": 18.0,
              "stopped": "SLOs met up to the maximum 32"}  # fmt: skip
    assert bracket_sentence(search) == (
        " The SLO search met 90% of requests within E2E ≤ 2 s up to its maximum, 32 users (6 levels, 18 s)."
    )
    search |= {"good": None, "saturated": 1.0, "stopped": "SLOs missed already at the start load"}
    assert "missed 90% of requests within E2E ≤ 2 s already at its start load, 1 users" in bracket_sentence(search)
