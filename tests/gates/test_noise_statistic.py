"""The gate's bootstrap resamples the statistic it judges: per-window rates in its noise model count
the same work at the same instants as the summary's stage figures (reports/_measures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import analyze
from reports._synthetic import SyntheticRun, write_synthetic_run
from reports.gates._noise import load_rows, sample_for


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
