"""SLO parsing and goodput figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from satscope.errors import SatscopeError
from satscope.reports import Slos, analyze, parse_slos


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["ttft=0.5", "itl=0.05"], Slos(ttft_s=0.5, itl_s=0.05)),
        (["ttft=500ms", "e2e=2s"], Slos(ttft_s=0.5, e2e_s=2.0)),
        (["TTFT_s = 0.25"], Slos(ttft_s=0.25)),
        ({"itl": 0.1}, Slos(itl_s=0.1)),
        (None, Slos()),
    ],
)
def test_parse(items: object, expected: Slos) -> None:
    assert parse_slos(items) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [["ttft"], ["foo=1"], ["ttft=fast"], ["ttft=-1"], ["ttft=0"], ["=1"]])
def test_bad_slos_are_one_line_errors(bad: list[str]) -> None:
    with pytest.raises(SatscopeError) as info:
        parse_slos(bad)
    assert "\n" not in str(info.value) and "e.g." in str(info.value)


def test_goodput_peaks_at_the_saturation_point(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"), slos=["ttft=0.5", "itl=0.05"])
    g = s["goodput"]
    assert g["best_stage"] == "users-8" and g["best_goodput_fraction"] == 1.0
    assert g["best_goodput_per_s"] == pytest.approx(s["saturation"]["requests_per_s"], rel=0.05)
    by_stage = {st["stage"]: st for st in s["stages"]}
    assert by_stage["users-32"]["goodput_fraction"] == 0.0  # queueing pushed TTFT over 0.5 s
    assert 0.3 < g["run_goodput_fraction"] < 0.7
    assert "Best goodput" in s["verdict"]


def test_itl_slo_alone_is_judged_on_the_mean_gap(synth: Callable[..., Path]) -> None:
    strict = analyze(synth(kind="memory_bandwidth"), slos=["itl=0.03"])
    by_stage = {st["stage"]: st for st in strict["stages"]}
    assert by_stage["users-8"]["goodput_fraction"] == 1.0
    assert by_stage["users-32"]["goodput_fraction"] == 0.0  # gaps stretched to 0.08 s


def test_without_slos_goodput_is_null(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    assert s["goodput"]["best_goodput_per_s"] is None
    assert all(st["goodput_per_s"] is None for st in s["stages"])
