"""The ``search`` block of ``summary.json``: what a ``--shape search`` run found (``search.json``).

The search decided each level while it ran (``satscope/loadgen/search.py``); the report carries its bracket,
its levels and its wall time, and the verdict names the bracket: the saturation point, or with
``--slo`` the max goodput load (the highest load whose SLO attainment met ``--slo-attainment``).
Times are elapsed run seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satscope.search_file import SearchFile

__all__ = ["bracket_sentence", "search_block", "slo_text"]


def search_block(run_dir: Path, origin_s: float) -> dict[str, Any] | None:
    """The run's search with times from ``origin_s``; None when the run was not a search."""
    found = SearchFile.read(run_dir)
    if found is None:
        return None
    slos = found.settings.get("slos") or None
    return {
        "unit": "users" if found.kind == "closed" else "req/s",
        "goal": "slo" if slos else "saturation",
        "slos": slos,
        "attainment": found.settings.get("attainment") if slos else None,
        "good": found.good,
        "saturated": found.saturated,
        "stopped": found.stopped,
        "levels_run": len(found.levels),
        "wall_s": found.wall_s,
        "capacity_per_s": found.capacity_per_s,
        "levels": [
            {
                "stage": lv.stage,
                "load": lv.load,
                "start_s": lv.start_s - origin_s,
                "end_s": lv.end_s - origin_s,
                "saturated": lv.saturated,
                "reason": lv.reason,
            }
            for lv in found.levels
        ],
    }


def bracket_sentence(search: dict[str, Any] | None, saturation: dict[str, Any] | None = None) -> str:
    """E.g. ``The search saturates between 4 and 5 users (6 levels, 18 s).`` ("" without a search).

    With the report's ``saturation`` block, a bracket the stage figures disagree with says why, so the
    verdict never states two answers without the reader knowing which measured what."""
    if not search:
        return ""
    unit, good, bad = search["unit"], search["good"], search["saturated"]
    took = f"({search['levels_run']} levels, {search['wall_s']:.0f} s)"
    if search.get("goal") == "slo":
        return _slo_sentence(search, took)
    if good is not None and bad is not None:
        early = "" if search["stopped"] == "bracket within the precision" else f"; {search['stopped']}"
        cap = search.get("capacity_per_s")
        served = ""
        if cap:
            served = f" An overloaded level served at most {cap:.3g} {unit}: the search judged its levels by it."
        note = _differs(saturation, good, bad, cap)
        return f" The search saturates between {good:g} and {bad:g} {unit} {took[:-1]}{early}).{served}{note}"
    if bad is None and good is not None and search["stopped"].startswith("not saturated"):
        return f" The search found no saturation up to {good:g} {unit} {took}."
    if bad is None and good is not None:
        ended = f" The search ended ({search['stopped']}) before a level saturated"
        return f"{ended}, the last good {good:g} {unit} {took}."
    if bad is not None:
        return f" The search saturated already at its start load, {bad:g} {unit} {took}."
    return f" The search decided no level {took}."


def _differs(saturation: dict[str, Any] | None, good: float, bad: float, capacity: float | None = None) -> str:
    """A note when the stage-based saturation point lies outside the search's bracket."""
    if not saturation:
        return ""
    point, found = saturation.get("offered_load"), saturation.get("found")
    if found and point is not None and good <= point <= bad:
        return ""
    if capacity:
        return (
            " The stage figures judge each stage by its own count, which on short Poisson stages near the"
            " capacity errs by a burst or a queue's rise; the search judged them by the rate an overload"
            " served: lengthen --stage-duration to make the two agree."
        )
    return (
        " The search judged each level without its first quarter, while the previous level's queue"
        " drained; the stage figures above include that change of load, so on short levels the two"
        " can differ: lengthen --stage-duration to make them agree."
    )


def slo_text(slos: dict[str, float | None]) -> str:
    """``{"ttft_s": 0.5, "itl_s": None, ...}`` → ``TTFT ≤ 0.5 s``."""
    names = {"ttft_s": "TTFT", "itl_s": "ITL", "e2e_s": "E2E"}
    return ", ".join(f"{names[k]} ≤ {v:g} s" for k, v in slos.items() if v is not None and k in names)


def _slo_sentence(search: dict[str, Any], took: str) -> str:
    """The SLO search's max goodput load: the bracket, or why there is none."""
    unit, good, bad = search["unit"], search["good"], search["saturated"]
    target = f"{search['attainment']:.0%} of requests within {slo_text(search['slos'])}"
    if good is not None and bad is not None:
        early = "" if search["stopped"] == "bracket within the precision" else f"; {search['stopped']}"
        return f" Max goodput load between {good:g} and {bad:g} {unit} ({target}; {took[1:-1]}{early})."
    if bad is None and good is not None and search["stopped"].startswith("SLOs met"):
        return f" The SLO search met {target} up to its maximum, {good:g} {unit} {took}."
    if bad is None and good is not None:
        return f" The SLO search ended ({search['stopped']}) with {target} met up to {good:g} {unit} {took}."
    if bad is not None:
        return f" The SLO search missed {target} already at its start load, {bad:g} {unit} {took}."
    return f" The SLO search decided no level {took}."
