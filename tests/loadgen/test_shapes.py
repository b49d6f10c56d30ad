"""Shapes and arrival schedules against plain numbers (a fake clock): no Locust, no sleeping."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from satscope.errors import SatscopeError
from satscope.loadgen.arrivals import arrival_times, next_gap
from satscope.loadgen.shape_options import ShapeOptions, build_shape
from satscope.loadgen.shapes import Shape, Stage, load_stages_toml


def test_step_shape_holds_each_step_and_ends() -> None:
    shape = build_shape(ShapeOptions(shape="step", users=16, start_load=4, steps=4, duration_s=40))
    assert [s.name for s in shape.stages] == ["step-1", "step-2", "step-3", "step-4"]
    assert [shape.at(t).users for t in (0, 9.9, 10, 25, 39.9)] == [4, 4, 8, 12, 16]
    assert shape.at(40) is None and shape.at(-1) is None


def test_ramp_is_linear_and_sine_oscillates() -> None:
    ramp = build_shape(ShapeOptions(shape="ramp", users=21, start_load=1, duration_s=10))
    assert [ramp.at(t).users for t in (0, 5, 9.999)] == [1, 11, 21]
    sine = build_shape(ShapeOptions(shape="sine", rate=10, amplitude=4, period_s=8, duration_s=16))
    assert sine.at(2).load == pytest.approx(14) and sine.at(6).load == pytest.approx(6)
    assert sine.kind == "open"


def test_spike_has_three_named_stages() -> None:
    shape = build_shape(ShapeOptions(shape="spike", users=50, start_load=5, duration_s=30))
    assert [(p.stage.name, p.users) for p in (shape.at(1), shape.at(15), shape.at(25))] == [
        ("base", 5),
        ("spike", 50),
        ("recovery", 5),
    ]


def test_timeline_is_on_the_monotonic_clock() -> None:
    shape = Shape([Stage("a", 2, 3), Stage("b", 5, 7, spawn_rate=2)])
    tl = shape.timeline(100.0)
    assert [(r["name"], r["start_s"], r["end_s"], r["users"]) for r in tl] == [("a", 100, 102, 3), ("b", 102, 107, 7)]
    assert tl[1]["spawn_rate"] == 2 and tl[0]["rate_rps"] is None


def test_stages_toml(tmp_path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[[stage]]\nname="warm"\nduration_s=5\nrate=2\narrival="constant"\n'
        '[[stage]]\nname="climb"\nduration_s=10\nrate={from=2, to=12}\narrival="gamma"\ncv=2.0\n'
    )
    shape = Shape(load_stages_toml(f))
    assert shape.kind == "open" and shape.duration_s == 15
    assert shape.at(10).load == pytest.approx(7) and shape.at(10).stage.arrival_cv == 2.0


@pytest.mark.parametrize(
    "text, fix",
    [
        ('[[stage]]\nname="x"\nduration_s=5\n', "users = N"),
        ('[[stage]]\nname="x"\nduration_s=5\nusers=1\nrate=2\n', "users = N"),
        ('[[stage]]\nname="x"\nduration_s=5\nusers=1\nbogus=2\n', "use only"),
        ("not toml [", "fix the file"),
    ],
)
def test_bad_stages_files_are_one_line_errors(tmp_path, text: str, fix: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SatscopeError) as err:
        load_stages_toml(f)
    assert fix in str(err.value)


def test_bad_shape_options() -> None:
    with pytest.raises(SatscopeError, match="exactly one of --users"):
        build_shape(ShapeOptions(users=1, rate=2))
    with pytest.raises(SatscopeError, match="shape 'zigzag' unknown"):
        ShapeOptions(shape="zigzag", users=1)
    with pytest.raises(SatscopeError, match="mixes"):
        Shape([Stage("a", 1, 1), Stage("b", 1, 1, kind="open")])


@pytest.mark.parametrize("arrival, cv", [("constant", 1.0), ("poisson", 1.0), ("gamma", 2.0), ("gamma", 0.5)])
def test_arrival_rate_and_burstiness(arrival: str, cv: float) -> None:
    shape = Shape([Stage("s", 400, 50, kind="open", arrival=arrival, arrival_cv=cv)])
    times = list(arrival_times(shape, random.Random(1)))
    assert len(times) / 400 == pytest.approx(50, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    measured_cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    assert measured_cv == pytest.approx(0.0 if arrival == "constant" else cv, abs=0.08)


def test_arrivals_follow_stages_and_split_between_processes() -> None:
    shape = Shape(
        [Stage("low", 100, 10, kind="open"), Stage("off", 20, 0, kind="open"), Stage("high", 100, 40, kind="open")]
    )
    times = [t for i in range(4) for t in arrival_times(shape, random.Random(i), share=0.25)]
    low = sum(1 for t in times if t < 100)
    off = sum(1 for t in times if 100 <= t < 120)
    high = sum(1 for t in times if t >= 120)
    assert low / 100 == pytest.approx(10, rel=0.1) and off == 0 and high / 100 == pytest.approx(40, rel=0.1)


def test_next_gap_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        next_gap("poisson", 0, random.Random())
    with pytest.raises(ValueError):
        next_gap("uniform", 1, random.Random())


def test_load_lists_and_geometric_series() -> None:
    from satscope.loadgen.load_list import parse_loads

    assert parse_loads("8", "--users", whole=True) == (8.0,)
    assert parse_loads("1,2,4, 8", "--users", whole=True) == (1.0, 2.0, 4.0, 8.0)
    assert parse_loads("geom:1:256:9", "--users", whole=True) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    # rounding users to whole numbers drops the repeats at the low end
    assert parse_loads("geom:1:10:6", "--users", whole=True) == (1.0, 2.0, 3.0, 4.0, 6.0, 10.0)
    rates = parse_loads("geom:0.5:8:5", "--rate", whole=False)
    assert rates == (0.5, 1.0, 2.0, 4.0, 8.0)
    with pytest.raises(SatscopeError, match="must be > 0"):
        parse_loads("1,0,2", "--rate", whole=False)


def test_a_load_list_is_one_hold_stage_per_value() -> None:
    o = ShapeOptions(users=8, levels=(1.0, 2.0, 4.0, 8.0), duration_s=40)
    shape = build_shape(o)
    assert [s.load for s in shape.stages] == [1, 2, 4, 8]
    assert [s.duration_s for s in shape.stages] == [10] * 4 and shape.duration_s == 40
    assert {s.profile for s in shape.stages} == {"hold"} and shape.kind == "closed"
    timed = build_shape(ShapeOptions(rate=2.0, levels=(0.5, 1.0, 2.0), stage_duration_s=7, arrival="constant"))
    assert [s.duration_s for s in timed.stages] == [7] * 3 and {s.arrival for s in timed.stages} == {"constant"}
    with pytest.raises(SatscopeError, match="makes one stage per value"):
        ShapeOptions(shape="sine", users=4, levels=(1.0, 4.0))
