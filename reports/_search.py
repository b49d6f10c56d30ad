"""The ``search`` block of ``summary.json``: what a ``--shape search`` run found (``search.json``).

The search decided each level while it ran (``loadgen/search.py``); the report carries its bracket,
its levels and its wall time, and the verdict names the bracket. Times are elapsed run seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satscope.search_file import SearchFile

__all__ = ["bracket_sentence", "search_block"]


def search_block(run_dir: Path, origin_s: float) -> dict[str, Any] | None:
    """The run's search with times from ``origin_s``; None when the run was not a search."""
    found = SearchFile.read(run_dir)
    if found is None:
        return None
    return {
        "unit": "users" if found.kind == "closed" else "req/s",
        "good": found.good,
        "saturated": found.saturated,
        "stopped": found.stopped,
        "levels_run": len(found.levels),
        "wall_s": found.wall_s,
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
    if good is not None and bad is not None:
        early = "" if search["stopped"] == "bracket within the precision" else f"; {search['stopped']}"
        note = _differs(saturation, good, bad)
        return f" The search saturates between {good:g} and {bad:g} {unit} {took[:-1]}{early}).{note}"
    if bad is None and good is not None and search["stopped"].startswith("not saturated"):
        return f" The search found no saturation up to {good:g} {unit} {took}."
    if bad is None and good is not None:
        ended = f" The search ended ({search['stopped']}) before a level saturated"
        return f"{ended}, the last good {good:g} {unit} {took}."
    if bad is not None:
        return f" The search saturated already at its start load, {bad:g} {unit} {took}."
    return f" The search decided no level {took}."


def _differs(saturation: dict[str, Any] | None, good: float, bad: float) -> str:
    """A note when the stage-based saturation point lies outside the search's bracket."""
    if not saturation:
        return ""
    point, found = saturation.get("offered_load"), saturation.get("found")
    if found and point is not None and good <= point <= bad:
        return ""
    return (
        " The search judged each level without its first quarter, while the previous level's queue"
        " drained; the stage figures above include that change of load, so on short levels the two"
        " can differ: lengthen --stage-duration to make them agree."
    )
