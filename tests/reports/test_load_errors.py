"""Missing or malformed run-directory files give a one-line error that names the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satscope.errors import SatscopeError
from satscope.reports import ReportInputError, analyze


def _raises_naming(run: Path, name: str) -> str:
    with pytest.raises(ReportInputError) as info:
        analyze(run)
    message = str(info.value)
    assert isinstance(info.value, SatscopeError)
    assert name in message and "\n" not in message, message
    return message


def test_missing_directory() -> None:
    with pytest.raises(ReportInputError, match="does not exist"):
        analyze("/nonexistent/run-dir")


@pytest.mark.parametrize("name", ["run.json", "requests.parquet"])
def test_missing_required_file(scratch_run: Callable[..., Path], name: str) -> None:
    run = scratch_run()
    (run / name).unlink()
    assert "missing" in _raises_naming(run, name)


def test_run_json_not_json(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    (run / "run.json").write_text('{"format_version": 1, ')
    assert "not valid JSON" in _raises_naming(run, "run.json")


def test_run_json_without_clock(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    manifest = json.loads((run / "run.json").read_text())
    manifest["clock"] = {"wall_origin_unix_s": 1.0}
    (run / "run.json").write_text(json.dumps(manifest))
    assert "monotonic_origin_s" in _raises_naming(run, "run.json")


def test_run_json_missing_field(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    manifest = json.loads((run / "run.json").read_text())
    del manifest["stages"]
    (run / "run.json").write_text(json.dumps(manifest))
    assert "`stages`" in _raises_naming(run, "run.json")


@pytest.mark.parametrize("name", ["requests.parquet", "tokens.parquet", "samples.parquet"])
def test_parquet_that_is_not_parquet(scratch_run: Callable[..., Path], name: str) -> None:
    run = scratch_run()
    (run / name).write_bytes(b"PAR1 this is not a parquet file at all")
    assert "Parquet" in _raises_naming(run, name)


def test_parquet_with_a_missing_column(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    table = pq.read_table(run / "requests.parquet").drop_columns(["ttft_intended_s"])
    pq.write_table(table, run / "requests.parquet")
    _raises_naming(run, "requests.parquet")


def test_parquet_with_a_column_of_the_wrong_type(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    table = pq.read_table(run / "samples.parquet")
    idx = table.schema.get_field_index("value")
    table = table.set_column(idx, "value", pa.array([str(v) for v in table["value"].to_pylist()]))
    pq.write_table(table, run / "samples.parquet")
    assert "`value`" in _raises_naming(run, "samples.parquet")


def test_repeated_request_ids(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run()
    table = pq.read_table(run / "requests.parquet")
    ids = table["request_id"].to_pylist()
    ids[1] = ids[0]
    table = table.set_column(0, "request_id", pa.array(ids))
    pq.write_table(table, run / "requests.parquet")
    assert "repeat" in _raises_naming(run, "requests.parquet")
