"""Shapes from command-line options: constant, ramp, step, spike, sine, or stages from TOML.

``--users N`` makes a closed loop (N concurrent users), ``--rate R`` an open loop (R requests/s);
the shape then says how that load moves over ``--duration``.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.shapes import Shape, Stage, load_stages_toml
from satscope.errors import SatscopeError

__all__ = ["SHAPES", "ShapeOptions", "build_shape", "check_flag_combination"]

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
    "--start-load": ("ramp", "step", "spike"),
    "--amplitude": ("sine",),
    "--period": ("sine",),
    "--stages": ("stages",),
}
_STAGES_EXCLUDE = ("--users", "--rate", "--duration", "--spawn-rate", "--arrival", "--cv")


def check_flag_combination(shape: str, closed_loop: bool, given: set[str]) -> None:
    """SatscopeError for a flag that this shape or loop would silently ignore.

    ``given`` holds the flags typed on the command line (``--steps``), defaults excluded.
    """
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
