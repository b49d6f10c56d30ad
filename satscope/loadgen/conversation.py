"""Multi-turn sessions: the think time between turns, and the history a later turn carries.

A session (``--turns N``) sends N turns one after another; turn k carries the real history: the
earlier prompts and the answers the server actually returned, as ``messages`` on the chat endpoint
and as the concatenated text on completions. Only the current session's history is held, so a
process keeps one history per user (closed loop) or per open session (open loop). Pure: the
sending and the waiting are in ``satscope/loadgen/_process.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from satscope.errors import SatscopeError
from satscope.loadgen.distributions import DISTRIBUTIONS, draw

if TYPE_CHECKING:
    from satscope.loadgen.workload import RequestSpec

__all__ = ["THINK_KINDS", "Session", "SessionSlot", "ThinkTime"]

THINK_KINDS = DISTRIBUTIONS
_TURN_SEPARATOR = "\n"  # completions: between one turn's answer and the next prompt


@dataclass(slots=True, frozen=True)
class ThinkTime:
    """Seconds between a turn's answer and the next turn: ``fixed`` (mean), ``uniform`` (mean ±
    spread), ``normal`` (mean, sd = spread), ``lognormal`` (median = mean, sigma = spread); never < 0."""

    kind: str = "fixed"
    mean_s: float = 0.0
    spread: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in THINK_KINDS:
            raise SatscopeError(f"think-time distribution {self.kind!r} unknown", f"use one of {THINK_KINDS}")
        if not (math.isfinite(self.mean_s) and self.mean_s >= 0 and math.isfinite(self.spread) and self.spread >= 0):
            raise SatscopeError(
                f"think time {self.mean_s:g} s (spread {self.spread:g}) is invalid", "use seconds >= 0, e.g. 2"
            )

    def sample(self, rng: random.Random) -> float:
        return max(0.0, draw(self.kind, self.mean_s, self.spread, rng))

    @classmethod
    def parse(cls, text: str) -> ThinkTime:
        """``2``, ``0.5``, ``fixed:2``, ``uniform:2:1``, ``normal:2:0.5``, ``lognormal:2:0.5`` (seconds)."""
        parts = text.split(":")
        try:
            if len(parts) == 1:
                return cls("fixed", float(parts[0]))
            if len(parts) > 3:
                raise ValueError(text)
            return cls(parts[0], float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0)
        except (ValueError, IndexError) as exc:
            raise SatscopeError(
                f"cannot read think time {text!r}", "write seconds S, or KIND:MEAN[:SPREAD] e.g. lognormal:2:0.5"
            ) from exc

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean_s": self.mean_s, "spread": self.spread}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThinkTime:
        return cls(d["kind"], float(d["mean_s"]), float(d["spread"]))


@dataclass(slots=True)
class Session:
    """One conversation in progress: its id, how many turns it has, and the turns answered so far.
    A conversation from a file also has its ``script`` (one request per user turn) and ``system``
    messages; a synthetic one draws each turn's prompt from the workload."""

    session_id: str
    turns: int
    system: tuple[str, ...] = ()
    script: tuple[RequestSpec, ...] | None = None
    sent: int = 0  # turns sent so far; the next one is turn ``sent + 1``
    next_at: float | None = None  # intended start of the next turn: the last answer's end + a think time
    stopped: bool = False  # a turn failed: the history is broken, the session sends no more
    _history: list[tuple[str, str]] = field(default_factory=list)  # (prompt, answer) of answered turns

    @property
    def next_turn(self) -> int:
        return self.sent + 1

    @property
    def done(self) -> bool:
        return self.stopped or self.sent >= self.turns

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat ``messages`` of the next turn: the history, then ``prompt`` as the user's."""
        out = [{"role": "system", "content": text} for text in self.system]
        for asked, answer in self._history:
            out += [{"role": "user", "content": asked}, {"role": "assistant", "content": answer}]
        out.append({"role": "user", "content": prompt})
        return out

    def text(self, prompt: str) -> str:
        """The completions prompt of the next turn: every earlier prompt followed by its answer, then ``prompt``."""
        opening = "".join(text + _TURN_SEPARATOR for text in self.system)
        return opening + "".join(asked + answer + _TURN_SEPARATOR for asked, answer in self._history) + prompt

    def answered(self, prompt: str, answer: str, next_at: float) -> None:
        """The next turn was sent with ``prompt`` and the server answered ``answer`` (what it streamed);
        the turn after it is due at ``next_at``."""
        self.sent += 1
        self._history.append((prompt, answer))
        self.next_at = next_at

    def failed(self) -> None:
        """The next turn was sent and did not end ``ok``: without its answer there is no history to go on."""
        self.sent += 1
        self.stopped = True


@dataclass(slots=True)
class SessionSlot:
    """A closed-loop user's current session (None before the first, replaced when one is done)."""

    session: Session | None = None
