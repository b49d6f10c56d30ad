"""Traffic shapes as pure arithmetic on elapsed time: constant, ramp, step, spike, sine, stages.

A :class:`Shape` is a list of named :class:`Stage` s laid end to end. Each stage holds a load
(users for a closed loop, requests/s for an open loop) that is constant, linear from one value to
another, or a sine around a mean. ``Shape.at(elapsed_s)`` answers which stage runs and at what
load; nothing here reads a clock, so tests drive it with plain numbers and the Locust
``LoadTestShape`` in ``satscope/loadgen/_locust_shape.py`` only calls it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satscope.errors import SatscopeError

__all__ = ["ARRIVALS", "KINDS", "PROFILES", "Shape", "ShapePoint", "Stage", "load_stages_toml"]

KINDS = ("closed", "open")
PROFILES = ("hold", "linear", "sine")
ARRIVALS = ("constant", "poisson", "gamma")


@dataclass(slots=True, frozen=True)
class Stage:
    """One named stretch of a shape. ``load`` is users (closed) or requests/s (open)."""

    name: str
    duration_s: float
    load: float
    kind: str = "closed"
    profile: str = "hold"
    load_end: float | None = None  # linear: load at the end of the stage
    amplitude: float = 0.0  # sine: peak deviation from ``load``
    period_s: float = 60.0  # sine
    spawn_rate: float | None = None  # closed: users started per second (None: reach it in ~1 s)
    arrival: str = "poisson"  # open
    arrival_cv: float = 1.0  # open, gamma: coefficient of variation of the gaps (1 = Poisson)

    def __post_init__(self) -> None:
        if not self.name:
            raise SatscopeError("a stage needs a name", "give every stage a non-empty name")
        if not self.duration_s > 0:
            raise SatscopeError(f"stage {self.name!r}: duration must be > 0 s", "use a positive duration")
        if self.kind not in KINDS:
            raise SatscopeError(f"stage {self.name!r}: kind {self.kind!r} unknown", f"use one of {KINDS}")
        if self.profile not in PROFILES:
            raise SatscopeError(f"stage {self.name!r}: profile {self.profile!r} unknown", f"use {PROFILES}")
        if self.load < 0 or (self.load_end is not None and self.load_end < 0):
            raise SatscopeError(f"stage {self.name!r}: load must be >= 0", "users and rates are never negative")
        if self.profile == "linear" and self.load_end is None:
            raise SatscopeError(f"stage {self.name!r}: a linear stage needs load_end", "set `to`")
        if self.profile == "sine" and (self.period_s <= 0 or self.amplitude > self.load):
            raise SatscopeError(
                f"stage {self.name!r}: sine needs period > 0 and amplitude <= mean",
                "lower the amplitude so the load never goes negative",
            )
        if self.spawn_rate is not None and self.spawn_rate <= 0:
            raise SatscopeError(f"stage {self.name!r}: spawn rate must be > 0", "use a positive spawn rate")
        if self.arrival not in ARRIVALS:
            raise SatscopeError(f"stage {self.name!r}: arrival {self.arrival!r} unknown", f"use {ARRIVALS}")
        if self.arrival_cv <= 0:
            raise SatscopeError(f"stage {self.name!r}: arrival cv must be > 0", "1.0 is Poisson")

    def load_at(self, offset_s: float) -> float:
        """Load ``offset_s`` seconds into this stage."""
        if self.profile == "linear":
            end = self.load if self.load_end is None else self.load_end
            return self.load + (end - self.load) * min(max(offset_s / self.duration_s, 0.0), 1.0)
        if self.profile == "sine":
            return self.load + self.amplitude * math.sin(2 * math.pi * offset_s / self.period_s)
        return self.load

    def peak_load(self) -> float:
        if self.profile == "linear":
            return max(self.load, self.load_end or 0.0)
        return self.load + self.amplitude

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True, frozen=True)
class ShapePoint:
    """What the shape asks for at one instant."""

    stage: Stage
    stage_index: int
    offset_s: float  # into the stage
    load: float

    @property
    def users(self) -> int:
        return round(self.load)

    @property
    def spawn_rate(self) -> float:
        if self.stage.spawn_rate is not None:
            return self.stage.spawn_rate
        return max(10.0, self.stage.peak_load())


@dataclass(slots=True)
class Shape:
    """Stages laid end to end; all of one kind (a run is either closed or open loop)."""

    stages: list[Stage]
    starts_s: list[float] = field(init=False)

    def __post_init__(self) -> None:
        if not self.stages:
            raise SatscopeError("a shape needs at least one stage", "check the shape options")
        kinds = {s.kind for s in self.stages}
        if len(kinds) > 1:
            raise SatscopeError("a shape mixes users and rate stages", "use either users or rate in every stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise SatscopeError(f"stage names repeat: {names}", "give every stage a distinct name")
        self.starts_s = []
        t = 0.0
        for stage in self.stages:
            self.starts_s.append(t)
            t += stage.duration_s

    @property
    def kind(self) -> str:
        return self.stages[0].kind

    @property
    def duration_s(self) -> float:
        return self.starts_s[-1] + self.stages[-1].duration_s

    def at(self, elapsed_s: float) -> ShapePoint | None:
        """The stage and load at ``elapsed_s`` since the shape started; ``None`` once it is over."""
        if elapsed_s < 0 or elapsed_s >= self.duration_s:
            return None
        index = 0
        for i, start in enumerate(self.starts_s):
            if start <= elapsed_s:
                index = i
        stage = self.stages[index]
        offset = elapsed_s - self.starts_s[index]
        return ShapePoint(stage=stage, stage_index=index, offset_s=offset, load=stage.load_at(offset))

    def timeline(self, origin_s: float) -> list[dict[str, Any]]:
        """``run.json``'s ``stages``: planned start/end on the monotonic clock from ``origin_s``."""
        rows = []
        for stage, start in zip(self.stages, self.starts_s, strict=True):
            closed = stage.kind == "closed"
            rows.append(
                {
                    "name": stage.name,
                    "start_s": origin_s + start,
                    "end_s": origin_s + start + stage.duration_s,
                    "kind": stage.kind,
                    "profile": stage.profile,
                    "users": stage.peak_load() if closed else None,
                    "spawn_rate": (stage.spawn_rate or max(10.0, stage.peak_load())) if closed else None,
                    "rate_rps": None if closed else stage.peak_load(),
                    "arrival": None if closed else stage.arrival,
                }
            )
        return rows

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.stages]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> Shape:
        return cls([Stage(**row) for row in rows])


def load_stages_toml(path: str | Path) -> list[Stage]:
    """Stages from a TOML file of ``[[stage]]`` tables.

    Keys: ``name``, ``duration_s``, then ``users`` or ``rate`` (a number, or ``from``/``to`` for a
    ramp), optional ``spawn_rate``, ``arrival`` (constant, poisson, gamma), ``cv``,
    ``amplitude``/``period_s`` for a sine.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except OSError as exc:
        raise SatscopeError(f"cannot read stages file {p}: {exc.strerror}", "check the --stages path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SatscopeError(f"stages file {p} is not valid TOML: {exc}", "fix the file") from exc
    tables = doc.get("stage")
    if not isinstance(tables, list) or not tables:
        raise SatscopeError(f"stages file {p} has no [[stage]] tables", "add at least one [[stage]]")
    return [_stage_from_table(i, t, p) for i, t in enumerate(tables)]


def _stage_from_table(i: int, t: dict[str, Any], p: Path) -> Stage:
    known = {
        "name",
        "duration_s",
        "users",
        "rate",
        "from",
        "to",
        "spawn_rate",
        "arrival",
        "cv",
        "amplitude",
        "period_s",
    }
    unknown = set(t) - known
    if unknown:
        raise SatscopeError(
            f"stages file {p}: stage {i + 1} has unknown keys {sorted(unknown)}", f"use only {sorted(known)}"
        )
    if ("users" in t) == ("rate" in t):
        raise SatscopeError(
            f"stages file {p}: stage {i + 1} needs exactly one of users / rate",
            "users = N (closed loop) or rate = R req/s (open loop)",
        )
    kind = "closed" if "users" in t else "open"
    value = t.get("users", t.get("rate"))
    profile, load_end = "hold", None
    where = f"stages file {p}: stage {i + 1}"
    if isinstance(value, dict):
        if "from" not in value or "to" not in value:
            raise SatscopeError(f"{where} ramp needs from and to", "{from=1, to=8}")
        profile = "linear"
        load, load_end = _number(value["from"], "from", where), _number(value["to"], "to", where)
    else:
        load = _number(value, "users" if kind == "closed" else "rate", where)
    if "amplitude" in t:
        profile = "sine"
    return Stage(
        name=str(t.get("name", f"stage-{i + 1}")),
        duration_s=_number(t.get("duration_s", 0), "duration_s", where),
        load=load,
        kind=kind,
        profile=profile,
        load_end=load_end,
        amplitude=_number(t.get("amplitude", 0.0), "amplitude", where),
        period_s=_number(t.get("period_s", 60.0), "period_s", where),
        spawn_rate=None if "spawn_rate" not in t else _number(t["spawn_rate"], "spawn_rate", where),
        arrival=str(t.get("arrival", "poisson")),
        arrival_cv=_number(t.get("cv", 1.0), "cv", where),
    )


def _number(value: Any, key: str, where: str) -> float:
    """A finite TOML number; anything else (a string, a table, true, nan, inf) is a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SatscopeError(f"{where}: {key} must be a finite number, got {value!r}", f"write {key} = 4")
    return float(value)
