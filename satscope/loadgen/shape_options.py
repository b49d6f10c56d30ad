"""Shapes from command-line options: constant, ramp, step, spike, sine, or stages from TOML.

``--users N`` makes a closed loop (N concurrent users), ``--rate R`` an open loop (R requests/s);
the shape then says how that load moves over ``--duration``. A list of loads (``--users 1,2,4,8``,
``--rate geom:0.5:8:5``; ``satscope.loadgen.load_list``) is one hold stage per value, each ``--stage-duration``
long (default: ``--duration`` shared equally). ``--shape search`` (users or rate; with ``--slo`` the
SLO search) decides its levels as it runs (``satscope.loadgen.search``): its shape here is only the envelope,
the maximum load for the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from satscope.errors import SatscopeError
from satscope.loadgen.search import SearchSettings
from satscope.loadgen.shapes import Shape, Stage, load_stages_toml

__all__ = ["SHAPES", "ShapeOptions", "build_shape", "check_flag_combination", "search_settings"]

SHAPES = ("constant", "ramp", "step", "spike", "sine", "stages", "search")
_SEARCH_LEVELS = 8  # a search level's default --stage-duration: the budget shared by this many levels


@dataclass(slots=True, frozen=True)
class ShapeOptions:
    """The shape flags of `satscope run`, before they become stages."""

    shape: str = "constant"
    users: float | None = None
    rate: float | None = None
    duration_s: float = 60.0
    start_load: float = 1.0  # ramp: from; step: first step; spike: base load
    steps: int = 5
    amplitude: float = 0.0
    period_s: float = 60.0
    spawn_rate: float | None = None
    arrival: str = "poisson"
    arrival_cv: float = 1.0
    stages_file: str | None = None
    levels: tuple[float, ...] = ()  # --users 1,2,4 / --rate geom:...: one hold stage per load
    stage_duration_s: float | None = None  # each level's stage; default duration_s / len(levels)
    precision: float = 0.1  # search: relative width of the final bracket
    budget_s: float | None = None  # search: seconds of load in all (default duration_s)
    slos: tuple[str, ...] = ()  # search: --slo KEY=VALUE: search the max goodput load instead of saturation
    slo_attainment: float = 0.99  # search with --slo: the share of requests that must meet every SLO

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise SatscopeError(f"shape {self.shape!r} unknown", f"use one of {', '.join(SHAPES)}")
        if self.levels and self.shape not in ("constant", "step"):
            flag = "--users" if self.users is not None else "--rate"
            raise SatscopeError(f"a list of loads ({flag}) makes one stage per value; --shape {self.shape} takes one",
                                f"drop --shape {self.shape}, or give {flag} one number")  # fmt: skip
        if self.stage_duration_s is not None and not self.stage_duration_s > 0:
            raise SatscopeError("--stage-duration must be > 0", "seconds per level, e.g. --stage-duration 30")
        if self.shape == "stages":
            if not self.stages_file:
                raise SatscopeError("--shape stages needs --stages FILE", "write the stages as TOML")
            return
        if (self.users is None) == (self.rate is None):
            raise SatscopeError(
                "give exactly one of --users (closed loop) and --rate (open loop)",
                "e.g. --users 16, or --rate 5 for 5 requests/s",
            )
        if self.duration_s <= 0:
            raise SatscopeError("--duration must be > 0", "seconds of load, e.g. --duration 60")
        if self.steps < 1:
            raise SatscopeError("--steps must be >= 1", "e.g. --steps 5")
        closed = self.users is not None
        peak = float(self.users if closed else self.rate)  # type: ignore[arg-type]
        flag = "--users" if closed else "--rate"
        if not peak > 0:
            what = "concurrent users" if closed else "requests/s"
            raise SatscopeError(f"{flag} must be > 0, got {peak:g}", f"{flag} is the peak load in {what}")
        if closed and not peak.is_integer():
            raise SatscopeError(f"--users must be a whole number, got {peak:g}", f"e.g. --users {max(round(peak), 1)}")
        if self.start_load < 0 or (closed and not float(self.start_load).is_integer()):
            raise SatscopeError(f"--start-load {self.start_load:g} is not a valid {'user count' if closed else 'rate'}",
                                "a whole number of users >= 0 (closed loop), a rate >= 0 (open loop)")


# Flags that mean something for some shapes or loops only: given elsewhere they would be ignored.
_SHAPE_FLAGS: dict[str, tuple[str, ...]] = {
    "--steps": ("step",),
    "--start-load": ("ramp", "step", "spike", "search"),
    "--precision": ("search",),
    "--budget": ("search",),
    "--slo-attainment": ("search",),
    "--amplitude": ("sine",),
    "--period": ("sine",),
    "--stages": ("stages",),
}
# Flags that a list of loads replaces (the list sets the levels and their number).
_LIST_EXCLUDE = ("--steps", "--start-load")
_STAGES_EXCLUDE = ("--users", "--rate", "--duration", "--spawn-rate", "--arrival", "--cv")


def check_flag_combination(shape: str, closed_loop: bool, given: set[str], load_list: bool = False) -> None:
    """SatscopeError for a flag that this shape or loop would silently ignore.

    ``given`` holds the flags typed on the command line (``--steps``), defaults excluded;
    ``load_list`` is true when --users or --rate named several loads.
    """
    flag = "--users" if closed_loop else "--rate"
    if load_list:
        for other in _LIST_EXCLUDE:
            if other in given:
                raise SatscopeError(f"{other} is ignored with a list of loads: {flag} sets every level",
                                    f"drop {other}")  # fmt: skip
        if "--duration" in given and "--stage-duration" in given:
            raise SatscopeError("give --duration (all levels) or --stage-duration (each level), not both",
                                "e.g. --stage-duration 30")  # fmt: skip
    elif shape == "search":
        if "--slo-attainment" in given and "--slo" not in given:
            raise SatscopeError("--slo-attainment is the share of requests that must meet the --slo bounds",
                                "add --slo, e.g. --slo ttft=0.5")  # fmt: skip
        if "--duration" in given and "--budget" in given:
            raise SatscopeError("give --duration or --budget (both are the search's seconds of load), not both",
                                "e.g. --budget 120")  # fmt: skip
    elif "--stage-duration" in given:
        raise SatscopeError("--stage-duration is only used with a list of loads",
                            f"e.g. {flag} 1,2,4,8 --stage-duration 30, or use --duration")  # fmt: skip
    for flag, shapes in _SHAPE_FLAGS.items():
        if flag in given and shape not in shapes:
            need = " or ".join(f"--shape {s}" for s in shapes)
            raise SatscopeError(f"{flag} is only used with {need}, not --shape {shape}", f"add {need} or drop {flag}")
    if shape == "stages":
        for flag in _STAGES_EXCLUDE:
            if flag in given:
                raise SatscopeError(f"{flag} is ignored with --shape stages: the stages file sets each stage",
                                    f"drop {flag} and write it into the [[stage]] tables")
        return
    loop_only = {"--spawn-rate": True, "--arrival": False, "--cv": False, "--max-in-flight": False}
    for flag, for_closed in loop_only.items():
        if flag in given and for_closed != closed_loop:
            needs = "--users (closed loop)" if for_closed else "--rate (open loop)"
            raise SatscopeError(f"{flag} is only used with {needs}", f"drop {flag}, or use {needs}")


def build_shape(o: ShapeOptions) -> Shape:
    """The stages the options describe."""
    if o.shape == "stages":
        assert o.stages_file is not None
        return Shape(load_stages_toml(o.stages_file))
    kind = "closed" if o.users is not None else "open"
    peak = float(o.users if o.users is not None else o.rate)  # type: ignore[arg-type]
    common = {"kind": kind, "spawn_rate": o.spawn_rate, "arrival": o.arrival, "arrival_cv": o.arrival_cv}
    d = o.duration_s
    if o.shape == "search":  # the envelope: the levels are decided as the run goes
        return Shape([Stage("search", o.budget_s or d, peak, **common)])
    if o.levels:
        each = o.stage_duration_s if o.stage_duration_s is not None else d / len(o.levels)
        return Shape([Stage(f"step-{i + 1}", each, x, **common) for i, x in enumerate(o.levels)])
    if o.shape == "constant":
        return Shape([Stage("constant", d, peak, **common)])
    if o.shape == "ramp":
        return Shape([Stage("ramp", d, o.start_load, profile="linear", load_end=peak, **common)])
    if o.shape == "step":
        loads = [o.start_load + (peak - o.start_load) * i / max(o.steps - 1, 1) for i in range(o.steps)]
        if kind == "closed":
            loads = [float(round(x)) for x in loads]
        return Shape([Stage(f"step-{i + 1}", d / o.steps, x, **common) for i, x in enumerate(loads)])
    if o.shape == "spike":
        third = d / 3
        return Shape(
            [
                Stage("base", third, o.start_load, **common),
                Stage("spike", third, peak, **common),
                Stage("recovery", third, o.start_load, **common),
            ]
        )
    return Shape([Stage("sine", d, peak, profile="sine", amplitude=o.amplitude, period_s=o.period_s, **common)])


def search_settings(o: ShapeOptions) -> SearchSettings | None:
    """The search's settings for ``--shape search``; None for every other shape."""
    if o.shape != "search":
        return None
    from satscope.reports._goodput import parse_slos

    slos = parse_slos(list(o.slos)) if o.slos else None
    return SearchSettings(
        kind="closed" if o.users is not None else "open",
        start_load=o.start_load,
        max_load=float(o.users if o.users is not None else o.rate),  # type: ignore[arg-type]
        stage_duration_s=o.stage_duration_s or (o.budget_s or o.duration_s) / _SEARCH_LEVELS,
        precision=o.precision,
        budget_s=o.budget_s or o.duration_s,
        spawn_rate=o.spawn_rate,
        slos=slos.as_dict() if slos is not None and slos.given else None,
        attainment=o.slo_attainment,
    )
