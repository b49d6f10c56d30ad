"""Read a run directory per docs/run-format.md, checking each file at the boundary.

Every problem with a file becomes a one-line :class:`ReportInputError` that names the file and
says what to do. Optional files (samples, probes.json, tokens) that are absent load as empty
tables, so the analysis degrades instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satscope.errors import SatscopeError
from satscope.run_format import (
    LOADGEN_FILE,
    MANIFEST_FILE,
    PROBES_FILE,
    REQUESTS_FILE,
    SAMPLES_FILE,
    TOKENS_FILE,
    read_parquet,
    read_requests_table,
    requests_schema,
    samples_schema,
    tokens_schema,
)
from satscope.run_manifest import Manifest, ManifestError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["ReportInputError", "RunData", "load_run"]

_REQUIRED_MANIFEST = ("format_version", "clock", "stages", "validity")
_DICTIONARY_COLUMNS = {
    REQUESTS_FILE: ["worker", "stage", "endpoint", "status", "error"],
    TOKENS_FILE: ["request_id"],
    SAMPLES_FILE: ["source", "metric", "labels"],
    LOADGEN_FILE: ["source", "metric", "labels"],
}


class ReportInputError(SatscopeError):
    """A run directory file that is missing or malformed."""


@dataclass(slots=True)
class RunData:
    """The files of one run, times already converted to elapsed run seconds."""

    run_dir: Path
    manifest: dict[str, Any]  # ``meta.to_json()``: the checked manifest as JSON
    requests: pd.DataFrame
    tokens: pd.DataFrame  # columns: req (row position in `requests`), index, t
    samples: pd.DataFrame  # columns: t, source, metric, value, labels
    probes: dict[str, Any] = field(default_factory=dict)
    origin_s: float = 0.0
    loadgen: pd.DataFrame | None = None  # loadgen.parquet (same columns as samples); None: absent
    meta: Manifest | None = None  # run.json, typed


def load_run(run_dir: str | Path) -> RunData:
    """Load and check ``run_dir``; raise :class:`ReportInputError` naming the bad file."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportInputError(f"run directory {root} does not exist", "pass the folder that holds run.json")
    raw = _read_json(root / MANIFEST_FILE, required=True)
    for key in _REQUIRED_MANIFEST:
        if key not in raw:
            raise ReportInputError(f"{root / MANIFEST_FILE}: field `{key}` is missing", "see docs/run-format.md")
    try:
        meta = Manifest.from_json(raw)
    except ManifestError as exc:
        raise ReportInputError(f"{root / MANIFEST_FILE}: {exc}", "see docs/run-format.md") from None
    manifest = meta.to_json()  # every field present, in the documented types
    origin = meta.clock.monotonic_origin_s
    # runs before probes.json stood alone carried a copy in run.json
    probes = _read_json(root / PROBES_FILE, required=False) or raw.get("probes") or {}
    requests_table = _read_table(root / REQUESTS_FILE, requests_schema(), required=True)
    request_ids = requests_table.column("request_id").combine_chunks()
    requests = requests_table.to_pandas()
    tokens = _read_table(root / TOKENS_FILE, tokens_schema(), required=False)
    samples = _read_table(root / SAMPLES_FILE, samples_schema(), required=False).to_pandas()
    for col in ("intended_start", "start", "first_token", "first_reasoning_token", "first_visible_token", "end"):
        requests[col] = requests[col] - origin
    requests = requests.reset_index(drop=True)
    if len(request_ids) and _count_distinct(request_ids) != len(request_ids):
        raise ReportInputError(f"{root / REQUESTS_FILE}: request_id values repeat", "each request needs its own id")
    samples["t"] = samples["t"] - origin
    loadgen = None
    if (root / LOADGEN_FILE).exists():
        loadgen = _read_table(root / LOADGEN_FILE, samples_schema(), required=False).to_pandas()
        loadgen["t"] = loadgen["t"] - origin
    tok = _token_rows(tokens, request_ids, origin)
    return RunData(root, manifest, requests, tok, samples, probes, origin, loadgen, meta)


def _count_distinct(values: pa.Array) -> int:
    import pyarrow.compute as pc

    return int(pc.count_distinct(values).as_py())


def _read_json(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.exists():
        if required:
            raise ReportInputError(f"{path} is missing", "is this a satscope run directory?")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path} is not valid JSON ({exc})", "re-run or restore the file") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"{path} must hold a JSON object", "see docs/run-format.md")
    return data


def _read_table(path: Path, schema: Any, required: bool) -> pa.Table:
    import pyarrow as pa

    if not path.exists():
        if required:
            raise ReportInputError(f"{path} is missing", "the load generator writes it; re-run")
        return schema.empty_table()
    try:
        # repeated strings as dictionaries (pandas categoricals): millions of rows, few distinct values.
        dictionary = _DICTIONARY_COLUMNS.get(path.name)
        if path.name == REQUESTS_FILE:  # columns newer than the file get their defaults
            table = read_requests_table(path, read_dictionary=dictionary)
        else:
            table = read_parquet(path, schema.names, read_dictionary=dictionary)
    except (OSError, pa.ArrowException, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReportInputError(
            f"{path} is not a readable Parquet file with the documented columns ({first_line})",
            "see docs/run-format.md",
        ) from None
    for fld in schema:
        got = table.schema.field(fld.name).type
        if pa.types.is_dictionary(got):
            got = got.value_type
        if pa.types.is_large_string(got) or pa.types.is_string_view(got):
            got = pa.string()  # pandas and polars write these; the values are the same strings
        if got != fld.type:
            raise ReportInputError(
                f"{path}: column `{fld.name}` is {got}, expected {fld.type}", "see docs/run-format.md"
            )
    return table


def _token_rows(tokens: pa.Table, request_ids: pa.Array, origin: float) -> pd.DataFrame:
    """Tokens keyed by request row position (an int) rather than by the id string.

    Works on the Arrow dictionary directly: millions of chunk rows share one id per request, and
    building a pandas categorical of them would cost more than the rest of the loading.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if tokens.num_rows == 0:
        return pd.DataFrame({"req": np.empty(0, np.int64), "index": np.empty(0, np.int32), "t": np.empty(0)})
    ids = tokens.column("request_id")

    def lookup(values: pa.Array) -> np.ndarray:  # Arrow's hash lookup: no Python strings made
        found = pc.index_in(values, value_set=request_ids)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    if pa.types.is_dictionary(ids.type):
        # each chunk (row group) has its own small dictionary: look them all up in one call
        dictionaries = [chunk.dictionary for chunk in ids.chunks]
        offsets = np.cumsum([0, *(len(d) for d in dictionaries)])
        positions = lookup(pa.concat_arrays(dictionaries))
        pos = np.concatenate(
            [
                positions[off + chunk.indices.to_numpy(zero_copy_only=False)]
                for off, chunk in zip(offsets, ids.chunks, strict=False)
            ]
        )
    else:
        pos = lookup(ids.combine_chunks())
    keep = pos >= 0  # chunks of requests that have no row cannot be placed in a stage
    req = pos[keep].astype(np.int64)
    index = tokens.column("index").to_numpy()[keep]
    t = tokens.column("t").to_numpy()[keep] - origin
    key = req * (int(index.max(initial=0)) + 1) + index
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):  # writers usually keep chunks in order
        order = np.argsort(key, kind="stable")
        req, index, t = req[order], index[order], t[order]
    return pd.DataFrame({"req": req, "index": index, "t": t})
