"""Thread-safe, append-only store of probe rows that becomes ``samples.parquet``.

Rows arrive from several sampler threads; each flush converts only the rows added since the last
flush into an Arrow batch, so a flush costs what is new, not the whole run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from satscope.probes._source import Row
from satscope.run_format import labels_to_str, samples_schema, write_parquet_atomic

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

__all__ = ["SampleBuffer"]


class SampleBuffer:
    """Collects rows; :meth:`flush` writes every row so far to a Parquet file atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Row] = []
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self._written_rows = -1
        self.latest: dict[tuple[str, str, str], tuple[float, float]] = {}

    def add(self, rows: list[Row]) -> None:
        if not rows:
            return
        with self._lock:
            self._pending.extend(rows)
            self._rows += len(rows)
            for row in rows:
                self.latest[(row.source, row.metric, labels_to_str(row.labels))] = (row.t, row.value)

    def latest_values(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """(source, metric, labels) -> (t, value) of the newest row of each series."""
        with self._lock:
            return dict(self.latest)

    def __len__(self) -> int:
        return self._rows

    def table(self) -> pa.Table:
        """Every row so far as one table with the ``samples.parquet`` schema."""
        import pyarrow as pa

        with self._lock:
            pending, self._pending = self._pending, []
            if pending:
                arrays = [
                    pa.array([r.t for r in pending], pa.float64()),
                    pa.array([r.source for r in pending], pa.string()),
                    pa.array([r.metric for r in pending], pa.string()),
                    pa.array([float(r.value) for r in pending], pa.float64()),
                    pa.array([labels_to_str(r.labels) for r in pending], pa.string()),
                ]
                self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=samples_schema()))
            batches = list(self._batches)
        return pa.Table.from_batches(batches, schema=samples_schema())

    def flush(self, path: Path, force: bool = False) -> bool:
        """Write all rows to ``path`` if any arrived since the last write (or ``force``)."""
        rows = self._rows
        if rows == self._written_rows and not force:
            return False
        write_parquet_atomic(path, self.table())
        self._written_rows = rows
        return True
