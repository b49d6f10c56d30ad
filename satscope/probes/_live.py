"""The server's queue, live: one JSON line per server scrape for the load generator's search.

The probes keep their samples in memory and publish ``samples.parquet`` every few seconds; a
``--shape search`` decides each level a moment after it ends and cannot read Parquet in the
process that times tokens. So the server probe's thread also appends, after every scrape, one line
of the canonical metrics the search reads (``SERVER_LIVE_METRICS``: waiting and running requests,
KV-cache use, preemptions/s) to ``.server-live.jsonl`` in the run directory, flushed at once; the
file goes at the end (docs/run-format.md, hidden working files).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from satscope.probes._source import Row
from satscope.run_format import SERVER_LIVE_FILE, SERVER_LIVE_METRICS

__all__ = ["LiveLine"]


class LiveLine:
    """Appends the server's queue figures of each scrape to the run directory's live file."""

    def __init__(self, out: Path) -> None:
        self.path = out / SERVER_LIVE_FILE
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def add(self, rows: Sequence[Row]) -> None:
        """One scrape's rows: the live metrics it has (the largest where labels split one)."""
        if self._file is None or not rows:
            return
        line: dict[str, float] = {}
        for row in rows:
            if row.metric in SERVER_LIVE_METRICS:
                line[row.metric] = max(line.get(row.metric, row.value), row.value)
        if line:
            self._file.write(json.dumps({"t": max(r.t for r in rows), **line}) + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close and remove the file: its figures are all in samples.parquet."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)
