"""Goodput: the rate of requests that succeeded *and* met every SLO given on the command line.

SLOs are ``KEY=VALUE`` with KEY ``ttft``, ``itl`` or ``e2e`` and VALUE in seconds (``0.5``,
``0.5s``) or milliseconds (``500ms``). TTFT and E2E are judged from the intended send time (what
a user waiting on an open-loop schedule sees); ITL is the request's mean inter-token gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satscope.errors import SatscopeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Slos", "good_requests", "parse_slos"]

_VALUE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$")


@dataclass(slots=True, frozen=True)
class Slos:
    """Latency objectives in seconds; None = not given."""

    ttft_s: float | None = None
    itl_s: float | None = None
    e2e_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_s", "itl_s", "e2e_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SatscopeError(
                    f"SLO {name} must be a positive number of seconds, not {value}", "e.g. --slo ttft=0.5"
                )

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.ttft_s, self.itl_s, self.e2e_s))

    def as_dict(self) -> dict[str, Any]:
        return {"ttft_s": self.ttft_s, "itl_s": self.itl_s, "e2e_s": self.e2e_s}


def parse_slos(items: list[str] | dict[str, float] | Slos | None) -> Slos:
    """``["ttft=0.5", "itl=50ms"]`` (or a dict, or Slos) → :class:`Slos`; bad input → SatscopeError."""
    if items is None:
        return Slos()
    if isinstance(items, Slos):
        return items
    pairs = list(items.items()) if isinstance(items, dict) else [_split(item) for item in items]
    values: dict[str, float] = {}
    for key, raw in pairs:
        name = key.strip().lower().removesuffix("_s")
        if name not in ("ttft", "itl", "e2e"):
            raise SatscopeError(f"unknown SLO `{key}`", "use ttft, itl or e2e, e.g. --slo ttft=0.5 --slo itl=0.05")
        values[f"{name}_s"] = _seconds(key, raw)
    return Slos(**values)


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise SatscopeError(f"SLO `{item}` is not KEY=VALUE", "e.g. --slo ttft=0.5 --slo itl=0.05")
    return key, value


def _seconds(key: str, raw: object) -> float:
    if isinstance(raw, int | float):
        return float(raw)
    match = _VALUE.match(str(raw))
    if not match:
        raise SatscopeError(f"SLO `{key}={raw}` is not a number of seconds", "e.g. ttft=0.5 or ttft=500ms")
    value = float(match.group(1))
    return value / 1000.0 if match.group(2) == "ms" else value


def good_requests(req: pd.DataFrame, slos: Slos) -> np.ndarray:
    """Boolean mask of requests that are ok and within every SLO given."""
    import numpy as np

    good = req["ok"].to_numpy().copy()
    ttft = req["ttft_intended_s"].fillna(req["ttft_s"]).to_numpy(dtype=float)
    if slos.ttft_s is not None:
        good &= np.nan_to_num(ttft, nan=np.inf) <= slos.ttft_s
    if slos.itl_s is not None:
        # a request with one chunk has no gap: it cannot break an ITL objective.
        good &= np.nan_to_num(req["itl_mean_s"].to_numpy(dtype=float), nan=0.0) <= slos.itl_s
    if slos.e2e_s is not None:
        good &= req["e2e_intended_s"].to_numpy(dtype=float) <= slos.e2e_s
    return good
