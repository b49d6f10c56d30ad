"""The `sessions` block from hand-made request rows, and the prompt-cache rule for sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satscope.reports._load import RunData
from satscope.reports._prompt_cache import prompt_cache_warnings
from satscope.reports._sessions import sessions_block


def _rows() -> pd.DataFrame:
    # s1: 3 ok turns; s2: turn 2 failed (the session ended there); s3: cut by the run's end after turn 1
    rows = [
        ("s1", 1, "ok", 0.0, 0.5, 0.10, 20), ("s1", 2, "ok", 1.0, 1.6, 0.20, 45), ("s1", 3, "ok", 2.0, 2.9, 0.40, 70),
        ("s2", 1, "ok", 0.2, 0.6, 0.12, 22), ("s2", 2, "http_error", 1.1, 1.2, np.nan, np.nan),
        ("s3", 1, "ok", 2.5, 3.0, 0.14, 18),
        (None, None, "ok", 0.1, 0.3, 0.05, 10),  # a request outside sessions is not in the block
    ]  # fmt: skip
    columns = ["session_id", "turn", "status", "intended_start", "end", "ttft_s", "prompt_tokens"]
    df = pd.DataFrame(rows, columns=columns)
    df["ok"] = df["status"] == "ok"
    return df


def test_sessions_block_counts_turns_and_sessions() -> None:
    block = sessions_block(_rows(), {"turns": 3})
    assert block is not None
    assert block["sessions"] == 3 and block["turns_per_session"] == 3 and block["sessions_complete"] == 1
    assert block["mean_turns_completed"] == pytest.approx((3 + 1 + 1) / 3)
    assert block["session_duration_s"]["count"] == 1 and block["session_duration_s"]["p50"] == pytest.approx(2.9)
    first, second, third = block["per_turn"]
    assert (first["turn"], first["requests"], first["requests_ok"]) == (1, 3, 3)
    assert first["ttft_s"]["p50"] == pytest.approx(np.quantile([0.10, 0.12, 0.14], 0.5))
    assert first["prompt_tokens_mean"] == pytest.approx(20.0)
    assert (second["requests"], second["requests_ok"], second["ttft_s"]["count"]) == (2, 1, 1)
    assert third["prompt_tokens_mean"] == 70.0


def test_no_sessions_is_null() -> None:
    df = _rows()
    df["session_id"], df["turn"] = None, np.nan
    assert sessions_block(df, {"turns": 1}) is None


def _run(workload: dict) -> RunData:
    requests = pd.DataFrame(
        {"status": ["ok"] * 4, "prompt_tokens": [100] * 4, "prompt_tokens_cached": [0, 60, 80, 90]}
    )
    return RunData(Path("."), {"config": {"workload": workload}}, requests, pd.DataFrame(), pd.DataFrame())


def test_cached_history_of_sessions_is_not_warned_about() -> None:
    assert prompt_cache_warnings(_run({"prefix_groups": 0}))[0]["code"] == "prompt_cache_hits"
    assert prompt_cache_warnings(_run({"prefix_groups": 0, "turns": 3}))[0]["code"] == "prompt_cache"


def test_the_block_is_documented_field_for_field() -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "summary-format.md").read_text()
    section = doc.split("\n## `sessions`\n", 1)[1].split("\n## ", 1)[0]
    documented = {re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])[0] for line in section.splitlines()
                  if line.startswith("| `")}  # fmt: skip
    block = sessions_block(_rows(), {"turns": 3})
    assert block is not None and set(block) == documented
    per_turn = section.split("`per_turn`", 1)[1]
    assert all(f'"{key}"' in per_turn for key in block["per_turn"][0])


def test_the_html_section_has_a_row_per_turn() -> None:
    from satscope.reports._sessions_table import sessions_section

    assert sessions_section({"sessions": None}) == []
    (section,) = sessions_section({"sessions": sessions_block(_rows(), {"turns": 3})})
    assert section.table is not None
    assert [row[:3] for row in section.table.rows] == [["1", "3/3", "20"], ["2", "1/2", "45"], ["3", "1/1", "70"]]
    assert "3 sessions of 3 turns, 1 complete" in section.paragraphs[0]


def test_a_requests_file_from_before_sessions_reads_with_null_sessions(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from satscope.run_format import read_requests_table, requests_schema

    schema = requests_schema()
    defaults = {"string": "x", "double": 1.0, "int32": 1, "bool": False}
    row = {f.name: defaults[str(f.type)] for f in schema}
    old = pa.Table.from_pylist([row], schema=schema).drop_columns(["session_id", "turn"])
    pq.write_table(old, tmp_path / "requests.parquet")
    table = read_requests_table(tmp_path / "requests.parquet")
    assert table.schema.names == schema.names
    assert table.column("session_id").to_pylist() == [None] and table.column("turn").to_pylist() == [None]
