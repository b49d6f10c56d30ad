"""Request records kept compactly, batched msgpack-friendly, and turned into the run's tables.

A load-generator process appends one :class:`RequestRecord` per request and the request's
token arrival times to an ``array('d')`` (no Python float objects per token: GC pauses showed up
in p99 when there were millions). ``WorkerBuffer.drain()`` hands everything since the last drain
over as a batch of lists and bytes, which Locust's msgpack transport carries from a worker to the
master; ``RunStore`` on the master (or the local runner) accumulates batches and, knowing the
shape's start time, builds the Arrow tables of ``docs/run-format.md``.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, NamedTuple

from loadgen.shapes import Shape
from loadgen.token_audit import token_mismatch

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RAW_FIELDS", "RequestRecord", "RunStore", "WorkerBuffer"]


class RequestRecord(NamedTuple):
    """What a load-generator process records about one request (times: monotonic seconds).

    ``output_chunks`` counts the token parts of the stream (``loadgen/sse.py``: a chunk counts once
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
        """Everything since the last drain as a msgpack-serializable batch, times moved by the offset."""
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
        }
        self.rows, self.token_counts, self.token_times, self.samples = [], [], array("d"), []
        return batch


class RunStore:
    """All records of a run, merged from every process's batches."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in RAW_FIELDS}
        self.token_row = array("i")  # row of requests for each token
        self.token_index = array("i")
        self.token_times = array("d")
        self.samples: list[list[Any]] = []
        self.received: dict[str, int] = {}  # worker -> records received
        self.announced: dict[str, int] = {}  # worker -> records it says it sent (final batch)

    @property
    def n_requests(self) -> int:
        return len(self.cols["request_id"])

    def extend(self, worker: str, batch: dict[str, Any]) -> None:
        base = self.n_requests
        for name in RAW_FIELDS:
            self.cols[name].extend(batch["cols"][name])
        times = array("d")
        times.frombytes(batch["token_times"])
        self.token_times.extend(times)
        for i, count in enumerate(batch["token_counts"]):
            self.token_row.extend([base + i] * count)
            self.token_index.extend(range(count))
        self.samples.extend(batch["samples"])
        self.received[worker] = self.received.get(worker, 0) + len(batch["token_counts"])
        if batch["final"]:
            self.announced[worker] = batch["total_requests"]

    def snapshot(self) -> RunStore:
        """A copy to build tables from in another thread while this one keeps growing (copying the
        lists and arrays is a memcpy; building Arrow tables is the slow part)."""
        snap = RunStore()
        snap.cols = {name: values[:] for name, values in self.cols.items()}
        snap.token_row, snap.token_index = array("i", self.token_row), array("i", self.token_index)
        snap.token_times = array("d", self.token_times)
        snap.samples = self.samples[:]
        return snap

    def missing(self) -> dict[str, int]:
        """Workers whose final count is not yet matched by received records (or not yet announced)."""
        return {w: n - self.received.get(w, 0) for w, n in self.announced.items() if self.received.get(w, 0) != n}

    def tables(self, shape: Shape, shape_origin_s: float | None) -> tuple[pa.Table, pa.Table, pa.Table]:
        """``(requests, tokens, loadgen)`` tables; stage and offered load from the intended start."""
        import numpy as np
        import pyarrow as pa

        from satscope.run_format import requests_schema, samples_schema, tokens_schema

        n = self.n_requests
        c = self.cols
        intended = np.asarray(c["intended_start"], dtype=np.float64)
        stage, offered = _stages_of(shape, shape_origin_s, intended)
        first = _times(c["first_token"])
        first_reasoning = _times(c["first_reasoning_token"])
        first_visible = _times(c["first_visible_token"])
        start = np.asarray(c["start"], dtype=np.float64)
        end = np.asarray(c["end"], dtype=np.float64)
        chunks = np.asarray(c["output_chunks"], dtype=np.int64)
        reasoning_chunks = np.asarray(c["reasoning_chunks"], dtype=np.int64)
        mismatch = token_mismatch(
            c["stream"], _counts(c["output_tokens"]), chunks, reasoning_chunks, _counts(c["reasoning_tokens"])
        )
        columns = {
            "request_id": c["request_id"],
            "worker": c["worker"],
            "stage": stage,
            "offered_load": offered,
            "endpoint": c["endpoint"],
            "stream": c["stream"],
            "intended_start": intended,
            "start": start,
            "first_token": _nullable(first),
            "first_reasoning_token": _nullable(first_reasoning),
            "first_visible_token": _nullable(first_visible),
            "end": end,
            "status": c["status"],
            "http_status": c["http_status"],
            "error": c["error"],
            "prompt_tokens": c["prompt_tokens"],
            "prompt_tokens_cached": c["prompt_tokens_cached"],
            "output_tokens": c["output_tokens"],
            "reasoning_tokens": c["reasoning_tokens"],
            "output_chunks": chunks.astype(np.int32),
            "reasoning_chunks": reasoning_chunks.astype(np.int32),
            "token_mismatch": mismatch,
            "input_tokens_requested": c["input_tokens_requested"],
            "max_tokens": c["max_tokens"],
            "retried": c["retried"],
            "ttft_s": _nullable(first - start),
            "ttfo_s": _nullable(first_visible - start),
            "e2e_s": end - start,
            "ttft_intended_s": _nullable(first - intended),
            "ttfo_intended_s": _nullable(first_visible - intended),
            "e2e_intended_s": end - intended,
            "session_id": c["session_id"],
            "turn": c["turn"],
        }
        schema = requests_schema()
        requests = pa.Table.from_arrays(
            [
                pa.array(columns[f.name], type=f.type)
                if not isinstance(columns[f.name], pa.Array)
                else columns[f.name].cast(f.type)
                for f in schema
            ],
            schema=schema,
        )
        ids = pa.array(c["request_id"], type=pa.string()) if n else pa.array([], type=pa.string())
        rows = np.frombuffer(self.token_row, dtype=np.int32) if len(self.token_row) else np.zeros(0, np.int32)
        tokens = pa.Table.from_arrays(
            [
                pa.DictionaryArray.from_arrays(pa.array(rows, type=pa.int32()), ids).cast(pa.string()),
                pa.array(
                    np.frombuffer(self.token_index, dtype=np.int32) if len(self.token_index) else np.zeros(0, np.int32),
                    type=pa.int32(),
                ),
                pa.array(
                    np.frombuffer(self.token_times, dtype=np.float64) if len(self.token_times) else np.zeros(0),
                    type=pa.float64(),
                ),
            ],
            schema=tokens_schema(),
        )
        s = self.samples
        loadgen = pa.Table.from_arrays(
            [
                pa.array([r[0] for r in s], pa.float64()),
                pa.array(["loadgen"] * len(s), pa.string()),
                pa.array([r[1] for r in s], pa.string()),
                pa.array([float(r[2]) for r in s], pa.float64()),
                pa.array([r[3] for r in s], pa.string()),
            ],
            schema=samples_schema(),
        )
        return requests, tokens, loadgen


def _times(values: list[float | None]) -> Any:
    """float64 with NaN for None (times that did not happen)."""
    import numpy as np

    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _counts(values: list[int | None]) -> Any:
    """int64 with -1 for None (counts the server did not report)."""
    import numpy as np

    return np.array([-1 if v is None else v for v in values], dtype=np.int64)


def _nullable(values: Any) -> pa.Array:
    """float64 Arrow array, null where NaN."""
    import numpy as np
    import pyarrow as pa

    return pa.array(values, mask=np.isnan(values))


def _stages_of(shape: Shape, origin_s: float | None, intended: Any) -> tuple[list[str], Any]:
    """Stage name and offered load at each intended start (the stage a request was dispatched in).

    Vectorised: this runs on every flush over every request so far. A request dispatched before the
    shape started gets the first stage at its start, one after the end (Locust ticks the shape once
    a second, so users run on up to a second) the last stage at its end.
    """
    import numpy as np

    names = np.array([s.name for s in shape.stages], dtype=object)
    n = len(intended)
    if origin_s is None or n == 0:
        return [shape.stages[0].name] * n, np.full(n, shape.stages[0].load_at(0.0))
    elapsed = np.clip(intended - origin_s, 0.0, shape.duration_s)
    index = np.clip(np.searchsorted(np.asarray(shape.starts_s), elapsed, side="right") - 1, 0, len(names) - 1)
    loads = np.empty(n)
    for i, stage in enumerate(shape.stages):
        sel = index == i
        if sel.any():
            offsets = elapsed[sel] - shape.starts_s[i]
            loads[sel] = stage.load if stage.profile == "hold" else [stage.load_at(x) for x in offsets]
    return names[index].tolist(), loads
