"""TTFO (time to first visible output) in the summary and the page: equal to TTFT and kept off the
page without reasoning; beside it, and without the requests that never answered, with reasoning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satscope.reports import build_report
from satscope.run_format import REQUESTS_FILE, requests_schema

THINKING_S = 0.5


def test_without_reasoning_ttfo_equals_ttft_and_stays_off_the_page(synth: Callable[..., Path], tmp_path: Path) -> None:
    result = build_report(synth(kind="kv_cache"), out=tmp_path / "r.html")
    s = result.summary
    assert s["run"]["reasoning_requests"] == s["run"]["reasoning_only_requests"] == 0
    assert s["percentiles"]["ttfo_s"] == s["percentiles"]["ttft_s"]
    assert s["percentiles"]["ttfo_intended_s"] == s["percentiles"]["ttft_intended_s"]
    for stage in s["stages"]:
        assert stage["ttfo_p99_s"] == stage["ttft_p99_s"] and stage["ttfo_p50_s"] == stage["ttft_p50_s"]
    assert "TTFO" not in result.html_path.read_text()


def _think(run_dir: Path) -> tuple[np.ndarray, int]:
    """Make every ok request of a synthetic run reason for THINKING_S before its first visible
    token, and every fourth of them never answer; return the TTFOs expected and the unanswered count."""
    df = pq.read_table(run_dir / REQUESTS_FILE).to_pandas()
    ok = (df["status"] == "ok").to_numpy()
    unanswered = ok & (np.cumsum(ok) % 4 == 0)
    df["first_reasoning_token"] = df["first_token"]
    df["reasoning_chunks"] = np.where(ok, 3, 0).astype(np.int32)
    visible = df["first_token"] + THINKING_S
    df["first_visible_token"] = visible.where(~unanswered)
    df["ttfo_s"] = df["first_visible_token"] - df["start"]
    df["ttfo_intended_s"] = df["first_visible_token"] - df["intended_start"]
    pq.write_table(pa.Table.from_pandas(df, schema=requests_schema(), preserve_index=False), run_dir / REQUESTS_FILE)
    return df["ttfo_s"].to_numpy()[ok & ~unanswered], int(unanswered.sum())


def test_with_reasoning_ttfo_sits_beside_ttft(scratch_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = scratch_run(kind="kv_cache")
    expected, unanswered = _think(run_dir)
    result = build_report(run_dir, out=tmp_path / "r.html")
    s = result.summary
    assert unanswered > 0
    assert s["run"]["reasoning_requests"] == s["run"]["requests_ok"]
    assert s["run"]["reasoning_only_requests"] == unanswered
    ttfo, ttft = s["percentiles"]["ttfo_s"], s["percentiles"]["ttft_s"]
    assert ttfo["count"] == ttft["count"] - unanswered == len(expected)
    assert ttfo["p50"] == pytest.approx(float(np.quantile(expected, 0.5)))
    assert ttfo["p99"] == pytest.approx(float(np.quantile(expected, 0.99)))
    for stage in s["stages"]:
        if stage["requests_ok"]:
            assert stage["ttfo_p50_s"] > stage["ttft_p50_s"]
    html = result.html_path.read_text()
    assert "TTFO p50" in html and "TTFO p99" in html and "fig-ttfo-dist" in html
    assert f"{unanswered} ended before any visible output" in html
