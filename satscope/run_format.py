"""The run directory's contract in code: file names, Arrow schemas and atomic writers.

`docs/run-format.md` is the prose; this module is what writers and readers import so that the
two never drift (``tests/test_run_format.py`` checks them against each other). It is light:
pyarrow is imported inside the functions that need it.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FORMAT_VERSION",
    "LOADGEN_FILE",
    "MANIFEST_FILE",
    "PROBES_FILE",
    "REQUESTS_FILE",
    "REQUEST_STATUSES",
    "SAMPLES_FILE",
    "SERVER_LIVE_FILE",
    "SERVER_LIVE_METRICS",
    "SUMMARY_FILE",
    "TOKENS_FILE",
    "labels_to_str",
    "read_parquet",
    "read_requests_table",
    "requests_schema",
    "samples_schema",
    "tokens_schema",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_parquet_atomic",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "run.json"
REQUESTS_FILE = "requests.parquet"
TOKENS_FILE = "tokens.parquet"
LOADGEN_FILE = "loadgen.parquet"
SAMPLES_FILE = "samples.parquet"
PROBES_FILE = "probes.json"
SUMMARY_FILE = "summary.json"
# hidden, while a run goes: the probes append one JSON line per server scrape, {"t": ..., metric: value},
# for the load generator's search to judge a level by the server's own queue (removed at the end)
SERVER_LIVE_FILE = ".server-live.jsonl"
SERVER_LIVE_METRICS = ("requests_waiting", "requests_running", "kv_cache_usage", "preemptions_per_s")

REQUEST_STATUSES = ("ok", "http_error", "timeout", "disconnected", "malformed", "connection_error", "dropped")

# (name, arrow type name, nullable) in documented order.
_REQUEST_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("request_id", "string", False),
    ("worker", "string", False),
    ("stage", "string", False),
    ("offered_load", "float64", False),
    ("endpoint", "string", False),
    ("stream", "bool", False),
    ("intended_start", "float64", False),
    ("start", "float64", False),
    ("first_token", "float64", True),
    ("first_reasoning_token", "float64", True),
    ("first_visible_token", "float64", True),
    ("end", "float64", False),
    ("status", "string", False),
    ("http_status", "int32", True),
    ("error", "string", True),
    ("prompt_tokens", "int32", True),
    ("prompt_tokens_cached", "int32", True),
    ("output_tokens", "int32", True),
    ("reasoning_tokens", "int32", True),
    ("output_chunks", "int32", False),
    ("reasoning_chunks", "int32", False),
    ("token_mismatch", "bool", False),
    ("input_tokens_requested", "int32", True),
    ("max_tokens", "int32", True),
    ("retried", "bool", False),
    ("ttft_s", "float64", True),
    ("ttfo_s", "float64", True),
    ("e2e_s", "float64", False),
    ("ttft_intended_s", "float64", True),
    ("ttfo_intended_s", "float64", True),
    ("e2e_intended_s", "float64", False),
    ("session_id", "string", True),
    ("turn", "int32", True),
)
# columns added after format version 1 first shipped: a file written before them still reads, with
# these defaults (null: not reported; False: not retried; 0: no reasoning counted) ...
_LATER_REQUEST_COLUMNS: dict[str, Any] = {
    "prompt_tokens_cached": None,
    "retried": False,
    "first_reasoning_token": None,
    "reasoning_tokens": None,
    "reasoning_chunks": 0,
    "session_id": None,
    "turn": None,
}
# ... or copies of a column it has: before reasoning and tool-call chunks were counted, the first
# token counted was always the first visible one
_LATER_REQUEST_COPIES: dict[str, str] = {
    "first_visible_token": "first_token",
    "ttfo_s": "ttft_s",
    "ttfo_intended_s": "ttft_intended_s",
}
_TOKEN_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("request_id", "string", False),
    ("index", "int32", False),
    ("t", "float64", False),
)
_SAMPLE_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("t", "float64", False),
    ("source", "string", False),
    ("metric", "string", False),
    ("value", "float64", False),
    ("labels", "string", False),
)


def _schema(columns: tuple[tuple[str, str, bool], ...]) -> pa.Schema:
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "int32": pa.int32(), "bool": pa.bool_()}
    return pa.schema([pa.field(name, types[kind], nullable=nullable) for name, kind, nullable in columns])


def requests_schema() -> pa.Schema:
    """Schema of ``requests.parquet``."""
    return _schema(_REQUEST_COLUMNS)


def read_parquet(
    path: str | os.PathLike[str], columns: list[str] | None = None, read_dictionary: list[str] | None = None
) -> pa.Table:
    """One Parquet file of the run as a table. Through ``ParquetFile``: ``pq.read_table`` imports
    ``pyarrow.dataset`` on its first call (0.5 s of every `satscope run` and report), and opens the
    path twice, so a publish in between mixes two versions; this opens it once. A column the file
    lacks raises ValueError, as ``read_table`` does (``ParquetFile.read`` would skip it)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, read_dictionary=read_dictionary) as parquet:
        if columns is not None:
            names = set(parquet.schema_arrow.names)
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"no column {missing[0]!r} in {os.fspath(path)}")
        return parquet.read(columns=columns)


def read_requests_table(path: str | os.PathLike[str], **read_options: Any) -> pa.Table:
    """``requests.parquet`` with the documented columns, in order; columns added later than the file
    get their defaults. Raises what :func:`read_parquet` raises for an unreadable file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = requests_schema()
    present = set(pq.read_schema(path).names)
    later = _LATER_REQUEST_COLUMNS.keys() | _LATER_REQUEST_COPIES.keys()
    table = read_parquet(path, [n for n in schema.names if n in present or n not in later], **read_options)
    for index, fld in enumerate(schema):  # in schema order, so that each lands at its own index
        if fld.name in present or fld.name not in later:
            continue
        if fld.name in _LATER_REQUEST_COPIES:
            column = table.column(_LATER_REQUEST_COPIES[fld.name])
        else:
            column = pa.array([_LATER_REQUEST_COLUMNS[fld.name]] * table.num_rows, type=fld.type)
        table = table.add_column(index, fld, column)
    return table


def tokens_schema() -> pa.Schema:
    """Schema of ``tokens.parquet``."""
    return _schema(_TOKEN_COLUMNS)


def samples_schema() -> pa.Schema:
    """Schema of ``samples.parquet`` and ``loadgen.parquet`` (long format)."""
    return _schema(_SAMPLE_COLUMNS)


def labels_to_str(labels: dict[str, Any] | None) -> str:
    """Canonical label string: ``k=v`` pairs sorted by key, joined by ``,``; ``""`` for none."""
    if not labels:
        return ""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _temp_beside(target: Path) -> tuple[int, str]:
    """A temp file next to ``target`` with the permissions a plain ``open()`` would give (umask applied)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is meant to be shared
    return fd, tmp


@functools.cache
def _umask() -> int:
    # Read, not set-and-restore: os.umask() changes the whole process, and writers run in threads.
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        return 0o022


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory and ``os.replace``."""
    target = Path(path)
    fd, tmp = _temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically. NaN/inf are written as null."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=str)
    return write_bytes_atomic(path, (text + "\n").encode())


def write_parquet_atomic(path: str | os.PathLike[str], table: pa.Table) -> Path:
    """Write an Arrow table as Parquet, atomically (temp file + ``os.replace``)."""
    import pyarrow.parquet as pq

    target = Path(path)
    fd, tmp = _temp_beside(target)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
