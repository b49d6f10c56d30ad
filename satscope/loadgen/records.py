"""Request records kept compactly, batched msgpack-friendly, and turned into the run's tables.

A load-generator process appends one :class:`RequestRecord` per request and the request's
token arrival times to an ``array('d')`` (no Python float objects per token: GC pauses showed up
in p99 when there were millions). ``WorkerBuffer.drain()`` hands everything since the last drain
over as a batch of lists and bytes, which Locust's msgpack transport carries from a worker to the
master. The master (or the local runner) forwards each batch to the record writer
(``satscope/loadgen/_record_writer.py``), which builds the Arrow tables of ``docs/run-format.md`` from them
(``satscope/loadgen/record_tables.py``), and keeps only recent records for its live figures
(``satscope/loadgen/recent.py``).
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any, NamedTuple

from satscope.loadgen.shapes import Shape

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RAW_FIELDS", "RequestRecord", "RunStore", "WorkerBuffer"]


class RequestRecord(NamedTuple):
    """What a load-generator process records about one request (times: monotonic seconds).

    ``output_chunks`` counts the token parts of the stream (``satscope/loadgen/sse.py``: a chunk counts once
    for each of reasoning, content and tool-call output it carries); ``reasoning_chunks`` those of
    them that carried reasoning. The four fields after ``retried`` came with reasoning streams; their
    defaults say "none seen". ``session_id`` and ``turn`` (1 for the first) belong to a session's turn.
    """

    request_id: str
    worker: str
    endpoint: str
    stream: bool
    intended_start: float
    start: float
    first_token: float | None
    end: float
    status: str
    http_status: int | None
    error: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    output_chunks: int
    input_tokens_requested: int | None
    max_tokens: int | None
    prompt_tokens_cached: int | None
    retried: bool
    first_reasoning_token: float | None = None
    first_visible_token: float | None = None
    reasoning_chunks: int = 0
    reasoning_tokens: int | None = None
    session_id: str | None = None
    turn: int | None = None


RAW_FIELDS = RequestRecord._fields
COMPLETE_MARGIN_S = 0.05  # a batch's records are complete up to its drain less this
_TIME_FIELDS = ("intended_start", "start", "first_token", "end", "first_reasoning_token", "first_visible_token")


class WorkerBuffer:
    """Records of one load-generator process since the last :meth:`drain`."""

    def __init__(self) -> None:
        self.rows: list[RequestRecord] = []
        self.token_counts: list[int] = []
        self.token_times = array("d")
        self.samples: list[tuple[float, str, float, str]] = []
        self.total_requests = 0
        self.batches = 0

    def add(self, row: RequestRecord, token_times: array) -> None:
        self.rows.append(row)
        self.token_counts.append(len(token_times))
        self.token_times.extend(token_times)
        self.total_requests += 1

    def add_sample(self, t: float, metric: str, value: float, labels: str) -> None:
        self.samples.append((t, metric, value, labels))

    def drain(self, clock_offset_s: float = 0.0, final: bool = False) -> dict[str, Any]:
        """Everything since the last drain as a msgpack-serializable batch, times moved by the offset.
        ``complete_to``: every request that ended before it is in this batch or an earlier one (a
        record is added a moment after its end is read: ``COMPLETE_MARGIN_S`` covers that)."""
        cols: dict[str, list[Any]] = {name: [r[i] for r in self.rows] for i, name in enumerate(RAW_FIELDS)}
        times = self.token_times
        if clock_offset_s:
            for name in _TIME_FIELDS:
                cols[name] = [None if v is None else v + clock_offset_s for v in cols[name]]
            times = array("d", (t + clock_offset_s for t in times))
            self.samples = [(t + clock_offset_s, m, v, lb) for t, m, v, lb in self.samples]
        self.batches += 1
        batch = {
            "seq": self.batches,
            "cols": cols,
            "token_counts": self.token_counts,
            "token_times": times.tobytes(),
            "samples": [list(s) for s in self.samples],
            "final": final,
            "total_requests": self.total_requests,
            "complete_to": time.perf_counter() - COMPLETE_MARGIN_S + clock_offset_s,
        }
        self.rows, self.token_counts, self.token_times, self.samples = [], [], array("d"), []
        return batch


class RunStore:
    """Every record of a run in memory, and the run's tables (``satscope/loadgen/record_tables.py``).

    The in-memory twin of the record writer's log: tests and the CLI's empty files use it; a load
    generator never holds a whole run (its records go to ``satscope/loadgen/_record_writer.py``).
    """

    def __init__(self) -> None:
        self._pieces: list[tuple[pa.Table, pa.Table, pa.Table]] = []

    @property
    def n_requests(self) -> int:
        return sum(raw.num_rows for raw, _, _ in self._pieces)

    def extend(self, worker: str, batch: dict[str, Any]) -> None:
        from satscope.loadgen.record_tables import batch_tables

        self._pieces.append(batch_tables(batch))

    def tables(self, shape: Shape, shape_origin_s: float | None) -> tuple[pa.Table, pa.Table, pa.Table]:
        """``(requests, tokens, loadgen)`` tables; stage and offered load from the intended start."""
        import pyarrow as pa

        from satscope.loadgen.record_tables import raw_schema, requests_table
        from satscope.run_format import samples_schema, tokens_schema

        schemas = (raw_schema(), tokens_schema(), samples_schema())
        raw, tokens, samples = (
            pa.concat_tables([p[i] for p in self._pieces]) if self._pieces else schema.empty_table()
            for i, schema in enumerate(schemas)
        )
        return requests_table(raw, shape, shape_origin_s), tokens, samples
