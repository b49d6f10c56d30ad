"""The server's own queue during a search level, from the probes' live lines (``.server-live.jsonl``).

The probes append one JSON line per server scrape (``satscope/probes/_live.py``, every 0.5 s by
default); :class:`ServerLive` reads the lines added since it last looked (a few hundred bytes: no
Parquet, no pyarrow in the process that times tokens) and :meth:`ServerLive.window` sums a level's
span up: the median of the requests the server kept waiting, the most it ran at once, its fullest
KV cache and the most preemptions per second. No file (``--no-probes``) or an engine without these
metrics: no figures, and the search judges by the client's alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from satscope.run_format import SERVER_LIVE_FILE

__all__ = ["ServerLive", "ServerWindow"]

_KEEP = 2000  # scrapes kept (1000 s at 0.5 s): a level reads only its own span


@dataclass(slots=True, frozen=True)
class ServerWindow:
    """The server's scrapes within one level's span."""

    samples: int
    waiting_p50: float | None  # requests waiting for a slot, the median scrape
    running_max: float | None
    kv_max: float | None  # KV-cache use, 0-1
    preemptions_per_s_max: float | None


class ServerLive:
    """The run directory's live lines, read incrementally."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / SERVER_LIVE_FILE
        self._offset = 0
        self._partial = b""
        self.rows: list[tuple[float, dict[str, float]]] = []

    def poll(self) -> None:
        """Read the lines appended since the last poll (a line still being written waits)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:  # not there (yet, or ever): nothing to add
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                row = json.loads(line)
                self.rows.append((float(row.pop("t")), {k: float(v) for k, v in row.items()}))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a line of ours: skipped, never fatal to the run
        del self.rows[:-_KEEP]

    def window(self, start_s: float, end_s: float) -> ServerWindow | None:
        """The scrapes taken in ``[start_s, end_s)``; None when there are none."""
        self.poll()
        rows = [m for t, m in self.rows if start_s <= t < end_s]
        if not rows:
            return None

        def values(name: str) -> list[float]:
            return [m[name] for m in rows if name in m]

        waiting, running, kv, preempt = (values(n) for n in ("requests_waiting", "requests_running",
                                                             "kv_cache_usage", "preemptions_per_s"))  # fmt: skip
        return ServerWindow(len(rows), median(waiting) if waiting else None, max(running, default=None),
                            max(kv, default=None), max(preempt, default=None))  # fmt: skip
