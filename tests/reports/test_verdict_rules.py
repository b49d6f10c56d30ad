"""Issue 11's rules on hand-built runs: the client judged per worker and never over the server,
the batch limit without a KV gauge, the busy host, open loop by served rate, named loads rounded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from satscope.reports import analyze
from satscope.reports._saturation import round_load
from satscope.reports._synthetic import SyntheticRun

SPEC = SyntheticRun()
E2E = SPEC.ttft_s + (SPEC.output_tokens - 1) * SPEC.itl_s


def _warnings(s: dict) -> dict[str, str]:
    return {w["code"]: w["message"] for w in s["validity"]["warnings"]}


def test_one_lagging_worker_is_judged_on_its_own(synth: Callable[..., Path]) -> None:
    lags = (0.001,) * 11 + (0.030,)
    assert np.quantile(np.repeat(lags, 10), 0.9) < 0.010  # pooled, as satscope/loadgen/saturation.py did
    s = analyze(synth(kind="none", worker_lag_s=lags))
    bn = s["bottleneck"]
    assert bn["kind"] == "client", s["verdict"]
    assert "worker w11: event-loop lag p90 30 ms" in bn["sentence"]
    assert "worker w0" not in bn["sentence"]
    assert not s["validity"]["ok"] and "loadgen_saturated" in _warnings(s)


def test_client_never_overrides_clear_server_evidence(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache", worker_lag_s=(0.050,)))
    assert s["bottleneck"]["kind"] == "kv_cache", s["verdict"]
    client = next(c for c in s["bottleneck"]["candidates"] if c["kind"] == "client")
    assert client["hit"]
    assert "the server's own evidence decides" in _warnings(s)["loadgen_strained"]


def test_lag_small_against_the_gaps_measured_is_not_the_client(synth: Callable[..., Path]) -> None:
    # 12 ms of lag p90 against 1 s inter-token gaps distorts nothing
    s = analyze(synth(kind="none", worker_lag_s=(0.012,), itl_s=1.0, output_tokens=4))
    assert s["bottleneck"]["kind"] == "none", s["verdict"]


def test_an_old_flag_is_rejudged_from_loadgen_parquet(synth: Callable[..., Path]) -> None:
    """run.json says saturated (the orchestrator's old judgement); the recorded figures say not."""
    import json

    run = synth(kind="kv_cache", worker_lag_s=(0.001,))
    manifest = json.loads((run / "run.json").read_text())
    manifest["validity"] |= {"loadgen_saturated": True, "loadgen_saturated_reason": "loop lag p90 12 ms"}
    (run / "run.json").write_text(json.dumps(manifest))
    s = analyze(run)
    assert s["bottleneck"]["kind"] == "kv_cache" and "loadgen_saturated" not in _warnings(s)
    (run / "loadgen.parquet").unlink()  # without the figures, the recorded flag is all there is ...
    again = analyze(run)  # ... and still does not override the server's own evidence
    assert again["bottleneck"]["kind"] == "kv_cache" and "loop lag p90 12 ms" in _warnings(again)["loadgen_strained"]


def test_batch_limit_without_a_kv_gauge(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="batch_limit", kv_gauge=False))
    bn = s["bottleneck"]
    assert bn["kind"] == "batch_limit", s["verdict"]
    assert "reports no KV cache usage" in bn["sentence"] and "no probe data" not in s["verdict"]
    assert {e["metric"] for e in bn["evidence"]} >= {"requests_running", "requests_waiting"}


def test_no_probe_data_is_said_only_without_samples(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="batch_limit", probes=False))
    assert s["bottleneck"]["kind"] == "unknown" and "no probe data" in s["verdict"]


def test_busy_host_is_a_warning_with_its_figures(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache", host_others_cores=1.2))
    text = _warnings(s)["host_contended"]
    share = int(text.split("host contended: ")[1].split("%")[0])
    assert 50 <= share <= 65 and "from 0 s" in text
    assert "host_contended" not in _warnings(analyze(synth(kind="kv_cache")))
    assert s["bottleneck"]["kind"] == "kv_cache"


def test_open_loop_is_judged_by_the_rate_served(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache", open_loop=True))
    sat = s["saturation"]
    capacity = SPEC.knee_load / E2E
    assert sat["found"] and sat["offered_load"] == pytest.approx(capacity)
    assert sat["knee_offered_load"] == pytest.approx(2 * capacity)
    assert sat["sustainable_per_s"] == pytest.approx(capacity, rel=0.1)
    assert f"it served only {sat['sustainable_per_s']:.2g} req/s" in s["verdict"]


def test_safe_point_is_below_a_level_with_queueing(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    safe = s["saturation"]["safe"]
    assert safe["offered_load"] == 4.0 and "preemptions/s" in safe["next_level_issue"]
    assert "Safe operating point 4 users (stage users-4)" in s["verdict"]


@pytest.mark.parametrize(
    ("value", "named"), [(5.9255, 5.9), (11.4, 11.0), (0.4567, 0.46), (1.38, 1.4), (24.0, 24.0), (None, None)]
)
def test_named_loads_are_rounded(value: float | None, named: float | None) -> None:
    assert round_load(value) == named
