"""A full `satscope run --serve` against the bundled server (slow: it loads a model)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.loadgen.conftest import run_satscope

pytestmark = pytest.mark.slow


def test_run_serve_end_to_end(tmp_path) -> None:
    out = tmp_path / "run"
    key = "sk-serve-SECRET"
    res = run_satscope(
        "--serve", f"--serve-arg=--api-key={key}", "--api-key", key, "--users", "2", "--duration", "4",
        "--input-len", "48", "--output-len", "8", "--out", str(out), timeout=400,
    )  # fmt: skip
    log = (out / "serve.log").read_text()[-3000:] if (out / "serve.log").exists() else ""
    assert res.returncode == 0, res.stderr + log
    manifest = json.loads((out / "run.json").read_text())
    req = pq.read_table(out / "requests.parquet").to_pandas()
    assert manifest["status"] == "complete" and manifest["target"]["served_by"] == "satscope serve --api-key=***"
    assert len(req) > 0 and (req.status == "ok").all(), req.error.unique()  # the key reached the server
    assert (req.output_chunks > 0).all() and req.prompt_tokens.notna().all()
    assert manifest["versions"]["torch"] is not None
    # prompts were calibrated to the server's byte-level tokenizer (~4 tokens per word): --input-len holds
    assert manifest["config"]["workload"]["tokens_per_word"] > 2
    assert manifest["loadgen"]["calibration_requests"] == manifest["config"]["workload"]["calibration"]["requests"] >= 3
    assert (req.prompt_tokens - 48).abs().median() <= 6, req.prompt_tokens.describe()
    for f in out.iterdir():
        assert key.encode() not in f.read_bytes(), f.name
