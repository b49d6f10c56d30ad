"""summary.json matches docs/summary-format.md, field for field, and is written atomically."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from satscope import reports
from satscope.reports import analyze, build_report

DOC = Path(__file__).resolve().parents[2] / "docs" / "summary-format.md"


def _documented_fields(heading: str) -> set[str]:
    """Field names in the first column of the table under ``## heading``."""
    text = DOC.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    fields: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            fields.update(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return fields


@pytest.fixture(scope="module")
def summary(synth: Callable[..., Path]) -> dict:
    return analyze(synth(kind="kv_cache"), slos=["ttft=0.5", "itl=0.05"])


def test_top_level_fields_are_the_documented_ones(summary: dict) -> None:
    assert set(summary) == _documented_fields("Top level")


@pytest.mark.parametrize(
    "block", ["run", "saturation", "bottleneck", "goodput", "utilization", "probes", "validity", "curve", "little"]
)
def test_block_fields_are_the_documented_ones(summary: dict, block: str) -> None:
    documented = _documented_fields(f"`{block}`")
    if block == "bottleneck":  # the evidence item's table lives in the same section
        assert set(summary[block]) <= documented
        assert set(summary[block]["evidence"][0]) <= documented
    else:
        assert set(summary[block]) == documented


def test_stage_rows_hold_documented_fields(summary: dict) -> None:
    documented = _documented_fields("`stages` (the per-stage table)")
    latencies = {
        f"{m}_{p}_s"
        for m in ("ttft", "ttfo", "itl", "e2e", "ttft_intended", "ttfo_intended", "e2e_intended")
        for p in ("p50", "p90", "p95", "p99")
    }
    for row in summary["stages"]:
        assert set(row) - latencies <= documented, set(row) - latencies - documented
        assert latencies <= set(row)


def test_percentile_keys(summary: dict) -> None:
    assert set(summary["percentiles"]) == {
        "ttft_s",
        "ttft_intended_s",
        "ttfo_s",
        "ttfo_intended_s",
        "itl_s",
        "e2e_s",
        "e2e_intended_s",
        "output_tokens",
    }
    for dist in summary["percentiles"].values():
        assert set(dist) == {"count", "mean", "p50", "p90", "p95", "p99", "max"}


def test_bottleneck_kinds_and_warning_codes_are_documented(summary: dict) -> None:
    text = DOC.read_text()
    for kind in ("kv_cache", "memory_bandwidth", "compute", "batch_limit", "client", "errors", "none", "unknown"):
        assert f"`{kind}`" in text
    for code in ("loadgen_saturated", "token_mismatches", "missing_probes", "no_samples", "few_levels"):
        assert f"`{code}`" in text


def test_written_file_is_strict_json_without_nan(synth: Callable[..., Path], tmp_path: Path) -> None:
    result = build_report(synth(kind="memory_bandwidth"), out=tmp_path / "r.html")
    text = result.summary_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["summary_format_version"] == 1 and data["verdict"] == result.verdict
    assert not list(result.summary_path.parent.glob("*.tmp"))


def test_public_names() -> None:
    assert reports.__all__ == sorted(reports.__all__)
    assert set(reports.__all__) == {
        "CompareResult",
        "ReportInputError",
        "ReportResult",
        "ReportSettings",
        "Slos",
        "analyze",
        "build_report",
        "compare_runs",
        "parse_slos",
    }


def test_timeline_is_downsampled_for_long_runs() -> None:
    import numpy as np
    import pandas as pd

    from satscope.reports._figures import MAX_POINTS, timeline_figure

    n = 10 * MAX_POINTS  # a 4-hour run at 1 s windows
    windows = pd.DataFrame(
        {
            "t_s": np.arange(n, dtype=float),
            "output_tokens_per_s": np.arange(n) % 100.0,
            "kv_cache_usage": np.full(n, 0.5),
        }
    )
    fig = timeline_figure(windows)
    assert [len(trace["x"]) for trace in fig.data] == [MAX_POINTS, MAX_POINTS]
    assert fig.data[0]["y"][0] == pytest.approx(np.mean(np.arange(10) % 100.0))
    # the panels the run did not sample are named, not drawn
    assert "TTFT p99" in fig.layout["annotations"][0]["text"]


def test_json_in_the_page_cannot_close_its_script_element() -> None:
    from satscope.reports._html import safe_json

    text = safe_json({"name": "</script><script>alert(1)</script>", "amp": "a&b", "ls": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script>"
