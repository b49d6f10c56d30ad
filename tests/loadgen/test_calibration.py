"""Prompt-length calibration against the bundled server's byte-level tokenizer (~3.7 tokens per word,
a chat template of ~17 bytes): `--input-len 64` must give 64 prompt tokens on average, on both
endpoints. Also the fit itself, on exact points."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from satscope.loadgen.calibrate import fit_line
from tests.helpers import bundled_server
from tests.loadgen.conftest import run_satscope

_TARGET = 64


def test_fit_line_recovers_slope_and_intercept() -> None:
    slope, intercept = fit_line([(46, 3 * 46 + 17), (92, 3 * 92 + 17), (184, 3 * 184 + 17)])
    assert slope == pytest.approx(3.0) and intercept == pytest.approx(17.0)


@pytest.mark.slow
def test_mean_prompt_tokens_hold_input_len_on_completions_and_chat(tmp_path) -> None:
    means, fits = {}, {}
    with bundled_server() as server:
        for endpoint in ("completions", "chat"):
            out = tmp_path / endpoint
            res = run_satscope(
                "--target", server.url, "--endpoint", endpoint, "--users", "2", "--duration", "3",
                "--input-len", str(_TARGET), "--output-len", "4", "--out", str(out), timeout=180,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
            manifest = json.loads((out / "run.json").read_text())
            req = pq.read_table(out / "requests.parquet").to_pandas()
            assert (req.status == "ok").all() and len(req) >= 20, req.error.unique()
            means[endpoint] = float(req.prompt_tokens.mean())
            w = manifest["config"]["workload"]
            fits[endpoint] = (w["tokens_per_word"], w["prompt_overhead_tokens"])
            assert manifest["loadgen"]["calibration_requests"] == w["calibration"]["requests"] >= 3
    for endpoint, mean in means.items():
        assert mean == pytest.approx(_TARGET, rel=0.03), (endpoint, mean, fits[endpoint])
    # the same tokenizer on both; the chat template's overhead is in the intercept, not the slope
    assert fits["chat"][0] == pytest.approx(fits["completions"][0], rel=0.01)
    assert fits["chat"][1] - fits["completions"][1] > 5
