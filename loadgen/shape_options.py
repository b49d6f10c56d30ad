"""Shapes from command-line options: constant, ramp, step, spike, sine, or stages from TOML.

``--users N`` makes a closed loop (N concurrent users), ``--rate R`` an open loop (R requests/s);
the shape then says how that load moves over ``--duration``.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.shapes import Shape, Stage, load_stages_toml
from satscope.errors import SatscopeError

__all__ = ["SHAPES", "ShapeOptions", "build_shape"]

SHAPES = ("constant", "ramp", "step", "spike", "sine", "stages")


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

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise SatscopeError(f"shape {self.shape!r} unknown", f"use one of {', '.join(SHAPES)}")
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


def build_shape(o: ShapeOptions) -> Shape:
    """The stages the options describe."""
    if o.shape == "stages":
        assert o.stages_file is not None
        return Shape(load_stages_toml(o.stages_file))
    kind = "closed" if o.users is not None else "open"
    peak = float(o.users if o.users is not None else o.rate)  # type: ignore[arg-type]
    common = {"kind": kind, "spawn_rate": o.spawn_rate, "arrival": o.arrival, "arrival_cv": o.arrival_cv}
    d = o.duration_s
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
