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

__all__ = ["Slos", "add_stage_goodput", "good_requests", "goodput_block", "parse_slos"]

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


def add_stage_goodput(stages: pd.DataFrame, req: pd.DataFrame, good: np.ndarray | None) -> None:
    """Per stage: ``goodput_per_s`` (good requests completed in the span per second),
    ``goodput_fraction`` (good share of the requests it dispatched) and the good requests'
    output tokens/s (``_goodput_tokens_per_s``, internal). NaN without SLOs."""
    import numpy as np

    for col in ("goodput_per_s", "goodput_fraction", "_goodput_tokens_per_s"):
        stages[col] = np.nan
    if good is None or stages.empty:
        return
    end = req["end"].to_numpy()
    out_tokens = req["out_tokens"].to_numpy()
    stage_of = req["stage"].astype(str).to_numpy()
    sent = req["sent"].to_numpy()
    for i, st in stages.iterrows():
        lo, hi = st["start_at_s"], st["end_at_s"]
        dur = max(hi - lo, 1e-9)
        ended = good & (end >= lo) & (end < hi)
        stages.at[i, "goodput_per_s"] = ended.sum() / dur
        stages.at[i, "_goodput_tokens_per_s"] = out_tokens[ended].sum() / dur
        mine = sent & (stage_of == st["stage"])
        stages.at[i, "goodput_fraction"] = good[mine].mean() if mine.any() else np.nan


def goodput_block(stages: pd.DataFrame, req: pd.DataFrame, good: np.ndarray | None, slos: Slos) -> dict[str, Any]:
    """The `goodput` block of summary.json: the stage with the most goodput, and the run's share."""
    from satscope.reports._stats import clean

    out: dict[str, Any] = {
        "slos": slos.as_dict(),
        "best_stage": None,
        "best_offered_load": None,
        "best_goodput_per_s": None,
        "best_goodput_fraction": None,
        "best_output_tokens_per_s": None,
        "run_goodput_fraction": None,
    }
    if good is None or stages.empty or not stages["goodput_per_s"].notna().any():
        return out
    best = stages.loc[stages["goodput_per_s"].idxmax()]
    sent = req["sent"].to_numpy()
    out |= {
        "best_stage": best["stage"],
        "best_offered_load": clean(best["offered_load"]),
        "best_goodput_per_s": clean(best["goodput_per_s"]),
        "best_goodput_fraction": clean(best["goodput_fraction"]),
        "best_output_tokens_per_s": clean(best["_goodput_tokens_per_s"]),
        "run_goodput_fraction": clean(good[sent].mean()) if sent.any() else None,
    }
    return out
