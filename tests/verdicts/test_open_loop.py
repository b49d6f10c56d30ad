"""Open loop and changing loads: overload is named at a served rate, light ramps and sines are not
saturation. The server runs at most 4 sequences (--max-num-seqs 4); its capacity in req/s is what
it generated per second in the overloaded step (its own counter) over the 32 tokens of an answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.verdicts.scenarios import COMMON, run_scenario, server_metric

pytestmark = pytest.mark.slow

LIGHT_OPEN = """
[[stage]]
name = "hold"
rate = 0.5
duration_s = 5
[[stage]]
name = "ramp"
rate = {from = 0.5, to = 1.5}
duration_s = 5
[[stage]]
name = "sine"
rate = 1.0
amplitude = 0.5
period_s = 5
duration_s = 5
"""
LIGHT_CLOSED = LIGHT_OPEN.replace("rate", "users").replace("users = 0.5", "users = 1").replace(
    "{from = 0.5, to = 1.5}", "{from = 1, to = 3}"
).replace("users = 1.0\namplitude = 0.5", "users = 2\namplitude = 1")


def test_open_loop_overload_is_named_at_the_rate_it_served(tmp_path: Path) -> None:
    r = run_scenario(
        tmp_path, "--serve", *COMMON, "--serve-arg=--max-num-seqs=4", "--shape", "step", "--rate", "6",
        "--start-load", "1", "--steps", "4", "--duration", "20", "--arrival", "poisson", "--output-len", "32",
    )  # fmt: skip
    print(r.row("open, step 1 → 6 req/s, --max-num-seqs 4"))
    sat = r.summary["saturation"]
    capacity = float(np.mean(server_metric(r, "generation_tokens_per_s", stage="step-4"))) / 32
    assert sat["found"] and r.kind == "batch_limit", r.verdict
    # the last level served is below capacity, the knee above it, and the rate sustained is the capacity
    assert capacity / 2 <= sat["offered_load"] and sat["served_per_s"] <= 1.15 * capacity, (capacity, r.verdict)
    assert sat["knee_offered_load"] >= capacity, (capacity, r.verdict)
    assert sat["sustainable_per_s"] == pytest.approx(capacity, rel=0.25), r.verdict
    named = f"it served only {sat['sustainable_per_s']:.2g} req/s"
    assert f"at {sat['knee']['offered_load_named']:g} req/s offered" in r.verdict and named in r.verdict


@pytest.mark.parametrize(("kind", "stages"), [("open", LIGHT_OPEN), ("closed", LIGHT_CLOSED)])
def test_light_hold_ramp_and_sine_are_not_saturation(tmp_path: Path, kind: str, stages: str) -> None:
    """Far below capacity (64 sequences): whatever the shape, there is no knee."""
    path = tmp_path / "stages.toml"
    path.write_text(stages)
    r = run_scenario(tmp_path, "--serve", *COMMON, "--shape", "stages", "--stages", str(path), "--output-len", "32")
    print(r.row(f"{kind}, light hold/ramp/sine"))
    sat = r.summary["saturation"]
    assert sat["method"] == "load_bins"
    assert not sat["found"] and r.kind == "none", r.verdict
    assert r.verdict.startswith("No saturation up to")
    peak = 1.5 if kind == "open" else 3.0
    assert sat["offered_load"] <= peak * 1.05  # levels are loads dispatched, never above the peak
