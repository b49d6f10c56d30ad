"""``search.json``: the decisions of a ``--shape search`` run, level by level, and the bracket found.

Written by the load generator's master (``satscope/loadgen/search.py`` decides, ``satscope/loadgen/runner.py``
writes it after every level), read by the report (``satscope/reports/_search.py``). One type for both, so
writer and reader cannot spell a key two ways. Times are monotonic seconds, as in ``run.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SEARCH_FILE", "SearchFile", "SearchLevel"]

SEARCH_FILE = "search.json"
_VERSION = 1


@dataclass(slots=True, frozen=True)
class SearchLevel:
    """One level as it ran: its stage, load, the figures that decided it, and the decision."""

    stage: str
    load: float
    start_s: float
    end_s: float
    saturated: bool | None  # None: too few figures (run once more) or, open loop, waiting for the capacity
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SearchFile:
    """The whole search: settings, levels in the order run, the bracket and why it stopped."""

    kind: str  # closed (users) or open (requests/s)
    settings: dict[str, Any]
    levels: list[SearchLevel] = field(default_factory=list)
    good: float | None = None  # highest load not saturated (None: even the start load was)
    saturated: float | None = None  # lowest load saturated (None: not saturated up to the maximum)
    stopped: str = ""  # why the search ended ("" while it runs)
    wall_s: float = 0.0  # seconds from the first level's start to the last level's end
    capacity_per_s: float | None = None  # open loop: req/s an overloaded level served (the search's yardstick)

    def to_json(self) -> dict[str, Any]:
        return {"format_version": _VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchFile:
        if d.get("format_version") != _VERSION:
            raise ValueError(f"search.json format_version {d.get('format_version')!r}, expected {_VERSION}")
        levels = [SearchLevel(**row) for row in d.get("levels", [])]
        keys = ("kind", "settings", "good", "saturated", "stopped", "wall_s", "capacity_per_s")
        return cls(levels=levels, **{k: d[k] for k in keys if k in d})

    @classmethod
    def read(cls, run_dir: str | Path) -> SearchFile | None:
        """The run's search, or None when the run was not a search."""
        path = Path(run_dir) / SEARCH_FILE
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()))
