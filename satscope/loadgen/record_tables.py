"""The run's Arrow tables, built from record batches one batch at a time.

A batch (``WorkerBuffer.drain``) becomes three tables with :func:`batch_tables`: the request records
as taken (``raw_schema``: no stage, nothing derived), their token rows and the load generator's
samples. None of them depends on anything outside the batch, so they can be appended to a log as
they arrive. :func:`requests_table` then turns the raw requests of the whole run into
``requests.parquet``'s table: the stage and offered load of each request from the shape as it ran
(a search's shape grows as its levels are decided, so this waits for the shape) and the derived
latencies. The record writer (``satscope/loadgen/_record_writer.py``) and the in-memory ``RunStore`` both
build through these functions, so a file is the same whichever wrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.loadgen.records import RAW_FIELDS
from satscope.loadgen.shapes import Shape
from satscope.loadgen.token_audit import token_mismatch

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["batch_tables", "raw_schema", "requests_table"]

# each raw field has the type of its column in requests.parquet
_RAW_TYPES: dict[str, str] = {
    "request_id": "string", "worker": "string", "endpoint": "string", "stream": "bool",
    "intended_start": "float64", "start": "float64", "first_token": "float64", "end": "float64",
    "status": "string", "http_status": "int32", "error": "string", "prompt_tokens": "int32",
    "output_tokens": "int32", "output_chunks": "int32", "input_tokens_requested": "int32", "max_tokens": "int32",
    "prompt_tokens_cached": "int32", "retried": "bool", "first_reasoning_token": "float64",
    "first_visible_token": "float64", "reasoning_chunks": "int32", "reasoning_tokens": "int32",
    "session_id": "string", "turn": "int32",
}  # fmt: skip


def raw_schema() -> pa.Schema:
    """The request records as a process took them, in ``RequestRecord`` order."""
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "int32": pa.int32(), "bool": pa.bool_()}
    return pa.schema([pa.field(name, types[_RAW_TYPES[name]]) for name in RAW_FIELDS])


def batch_tables(batch: dict[str, Any]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """``(raw requests, tokens, loadgen samples)`` of one batch."""
    import numpy as np
    import pyarrow as pa

    from satscope.run_format import samples_schema, tokens_schema

    schema = raw_schema()
    cols = batch["cols"]
    raw = pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)
    counts = np.asarray(batch["token_counts"], dtype=np.int64)
    rows = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    index = (np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
    ids = pa.array(cols["request_id"], type=pa.string())
    tokens = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(pa.array(rows, type=pa.int32()), ids).cast(pa.string()),
            pa.array(index, type=pa.int32()),
            pa.array(np.frombuffer(batch["token_times"], dtype=np.float64), type=pa.float64()),
        ],
        schema=tokens_schema(),
    )
    s = batch["samples"]
    samples = pa.Table.from_arrays(
        [
            pa.array([r[0] for r in s], pa.float64()),
            pa.array(["loadgen"] * len(s), pa.string()),
            pa.array([r[1] for r in s], pa.string()),
            pa.array([float(r[2]) for r in s], pa.float64()),
            pa.array([r[3] for r in s], pa.string()),
        ],
        schema=samples_schema(),
    )
    return raw, tokens, samples


def requests_table(raw: pa.Table, shape: Shape, shape_origin_s: float | None) -> pa.Table:
    """``requests.parquet``'s table from the raw requests: stage and offered load from the intended
    start, the derived latencies, the token audit."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from satscope.run_format import requests_schema

    def floats(name: str) -> Any:  # NaN where the time did not happen
        return pc.fill_null(raw.column(name), np.nan).to_numpy()

    def counts(name: str) -> Any:  # -1 where the server did not say
        return pc.fill_null(raw.column(name), -1).to_numpy().astype(np.int64)

    intended, start, end = floats("intended_start"), floats("start"), floats("end")
    first, first_visible = floats("first_token"), floats("first_visible_token")
    stage, offered = _stages_of(shape, shape_origin_s, intended)
    chunks, reasoning_chunks = counts("output_chunks"), counts("reasoning_chunks")
    mismatch = token_mismatch(
        raw.column("stream").to_numpy(), counts("output_tokens"), chunks, reasoning_chunks, counts("reasoning_tokens")
    )
    derived: dict[str, Any] = {
        "stage": pa.array(stage, type=pa.string()),
        "offered_load": pa.array(offered, type=pa.float64()),
        "token_mismatch": pa.array(mismatch, type=pa.bool_()),
        "ttft_s": _nullable(first - start),
        "ttfo_s": _nullable(first_visible - start),
        "e2e_s": pa.array(end - start, type=pa.float64()),
        "ttft_intended_s": _nullable(first - intended),
        "ttfo_intended_s": _nullable(first_visible - intended),
        "e2e_intended_s": pa.array(end - intended, type=pa.float64()),
    }
    schema = requests_schema()
    columns = [derived[f.name] if f.name in derived else raw.column(f.name) for f in schema]
    return pa.Table.from_arrays([pa.chunked_array([c]) if isinstance(c, pa.Array) else c for c in columns],
                                schema=schema)  # fmt: skip


def _nullable(values: Any) -> pa.Array:
    """float64 Arrow array, null where NaN."""
    import numpy as np
    import pyarrow as pa

    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def _stages_of(shape: Shape, origin_s: float | None, intended: Any) -> tuple[list[str], Any]:
    """Stage name and offered load at each intended start (the stage a request was dispatched in).

    Vectorised: this runs on every publish over every request so far. A request dispatched before
    the shape started gets the first stage at its start, one after the end (Locust ticks the shape
    once a second, so users run on up to a second) the last stage at its end.
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
