"""The gate's bootstrap resamples the statistic it judges: per-window rates in its noise model count
the same work at the same instants as the summary's stage figures (satscope/reports/_measures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from satscope.reports import analyze
from satscope.reports._synthetic import SyntheticRun, write_synthetic_run
from satscope.reports.gates._noise import load_rows, sample_for


@pytest.mark.parametrize("leaf", ["requests_per_s", "output_tokens_per_s", "total_tokens_per_s"])
def test_window_samples_average_to_the_stage_figure(tmp_path: Path, leaf: str) -> None:
    # TTFT of 2 s in 10 s stages: prompt tokens counted at the send would land a stage early
    run = write_synthetic_run(tmp_path / "run", SyntheticRun(kind="none", levels=(2, 4, 8), ttft_s=2.0, stage_s=10.0))
    summary = analyze(run)
    rows = load_rows(run, summary)
    for stage in summary["stages"]:
        sample = sample_for(rows, f"stages[{stage['stage']}].{leaf}", stage["stage"])
        assert sample is not None
        assert float(sample.values.mean()) == pytest.approx(stage[leaf], rel=0.02), (stage["stage"], leaf)


def test_ttfo_and_fractional_levels_have_a_noise_model(tmp_path: Path) -> None:
    """Every latency the summary carries can be gated with its bootstrap: TTFO beside TTFT, and the
    configured levels such as p95 and p99.9, each resampling the statistic it judges."""
    import numpy as np

    from satscope.reports import build_report

    run = write_synthetic_run(tmp_path / "run", SyntheticRun(kind="none", levels=(2, 4), stage_s=10.0))
    summary = build_report(run, percentiles=[50, 90, 95, 99, 99.9]).summary
    rows = load_rows(run, summary)
    for path, want in (
        ("percentiles.ttfo_s.p99", summary["percentiles"]["ttfo_s"]["p99"]),
        ("percentiles.ttft_s.p99_9", summary["percentiles"]["ttft_s"]["p99_9"]),
        ("percentiles.e2e_intended_s.p95", summary["percentiles"]["e2e_intended_s"]["p95"]),
    ):
        sample = sample_for(rows, path, None)
        assert sample is not None, path
        assert float(sample.statistic(sample.values[None, :])[0]) == pytest.approx(want, rel=1e-9), path
    stage = summary["stages"][0]
    sample = sample_for(rows, f"stages[{stage['stage']}].ttfo_p95_s", stage["stage"])
    assert sample is not None and np.isclose(sample.statistic(sample.values[None, :])[0], stage["ttfo_p95_s"])
