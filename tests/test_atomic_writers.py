"""The run directory's atomic writers: complete files or none, shareable permissions, no temp left behind."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satscope.run_format import samples_schema, write_bytes_atomic, write_json_atomic, write_parquet_atomic


def test_json_is_written_whole_with_nan_as_null_and_umask_permissions(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "sub" / "run.json", {"a": math.nan, "b": [1.5, math.inf], "c": "x"})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None], "c": "x"}
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_bytes_atomic(tmp_path / "report.html", b"<html>old</html>")

    with pytest.raises(TypeError):
        write_bytes_atomic(target, object())  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"<html>old</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_parquet_round_trips_with_the_contract_schema(tmp_path: Path) -> None:
    table = pa.table(
        {"t": [1.0, 2.0], "source": ["server"] * 2, "metric": ["kv_cache_usage"] * 2, "value": [0.1, 0.9],
         "labels": ["", ""]},
        schema=samples_schema(),
    )
    path = write_parquet_atomic(tmp_path / "samples.parquet", table)
    assert pq.read_table(path).equals(table)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
