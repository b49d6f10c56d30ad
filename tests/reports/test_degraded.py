"""Missing probe data degrades the report (fewer figures, a stated reason), never breaks it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from satscope.reports import analyze, build_report


def test_no_probes_at_all(synth: Callable[..., Path], tmp_path: Path) -> None:
    run = synth(kind="kv_cache", probes=False)
    result = build_report(run, out=tmp_path / "r.html")
    s = result.summary
    assert s["saturation"]["found"] and s["saturation"]["offered_load"] == 8.0  # from requests alone
    assert s["bottleneck"]["kind"] == "unknown"
    assert "no probe data" in s["bottleneck"]["sentence"]
    codes = {w["code"] for w in s["validity"]["warnings"]}
    assert "no_samples" in codes
    assert s["probes"]["present"] is False and s["correlations"] == []
    assert all(st["kv_cache_usage_max"] is None and st["mbu"] is None for st in s["stages"])
    assert json.loads(result.summary_path.read_text())["bottleneck"]["kind"] == "unknown"
    assert "not sampled in this run" in result.html_path.read_text()


def test_no_gpu_probe_still_names_the_kv_cache(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache", gpu=False))
    assert s["bottleneck"]["kind"] == "kv_cache"
    cand = {c["kind"]: c for c in s["bottleneck"]["candidates"]}
    assert "gpu_dram_bw_util" in cand["memory_bandwidth"]["reason_not"]
    assert "gpu" in s["probes"]["missing"]
    assert any(w["code"] == "missing_probes" and "NVML" in w["message"] for w in s["validity"]["warnings"])


def test_bandwidth_bound_run_without_gpu_data_is_unknown_not_wrong(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="memory_bandwidth")
    samples = pq.read_table(run / "samples.parquet")
    pq.write_table(samples.filter(pc.not_equal(samples["source"], "gpu")), run / "samples.parquet")
    s = analyze(run)
    assert s["saturation"]["found"]
    assert s["bottleneck"]["kind"] == "unknown"


def test_preemption_counter_stands_in_for_the_rate(scratch_run: Callable[..., Path]) -> None:
    import pandas as pd
    import pyarrow as pa

    run = scratch_run(kind="kv_cache")
    samples = pq.read_table(run / "samples.parquet").to_pandas()
    rate = samples[samples["metric"] == "preemptions_per_s"].sort_values("t")
    total = rate.assign(metric="preemptions_total", value=(rate["value"] * 0.5).cumsum())
    samples = samples[samples["metric"] != "preemptions_per_s"]
    table = pa.Table.from_pandas(pd.concat([samples, total]), preserve_index=False)
    pq.write_table(table, run / "samples.parquet")
    s = analyze(run)
    ev = {e["metric"]: e["value"] for e in s["bottleneck"]["evidence"]}
    assert s["bottleneck"]["kind"] == "kv_cache"
    assert ev["preemptions_per_s"] > 1.0


def test_no_tokens_file_falls_back_to_usage_counts(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    (run / "tokens.parquet").unlink()
    s = analyze(run)
    assert s["saturation"]["found"] and s["saturation"]["offered_load"] == 8.0
    assert s["saturation"]["output_tokens_per_s"] > 300
    assert s["percentiles"]["itl_s"]["count"] == 0 and s["saturation"]["itl_p99_s"] is None


def test_run_without_stages_in_manifest_uses_request_stages(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    manifest = json.loads((run / "run.json").read_text())
    manifest["stages"] = []
    (run / "run.json").write_text(json.dumps(manifest))
    s = analyze(run)
    assert [st["stage"] for st in s["stages"]][:2] == ["users-1", "users-2"]
    assert s["saturation"]["offered_load"] == 8.0


def test_run_still_going_with_no_requests_yet(scratch_run: Callable[..., Path], tmp_path: Path) -> None:
    run = scratch_run(kind="kv_cache")
    for name in ("requests.parquet", "tokens.parquet"):
        pq.write_table(pq.read_table(run / name).slice(0, 0), run / name)
    manifest = json.loads((run / "run.json").read_text())
    manifest |= {"status": "running", "end_s": None}
    manifest["stages"][-1]["end_s"] = None
    (run / "run.json").write_text(json.dumps(manifest))
    result = build_report(run, out=tmp_path / "r.html")
    s = result.summary
    assert result.verdict.startswith("No request succeeded (0 sent)")
    assert not s["validity"]["ok"]
    assert {"no_successful_requests", "run_not_complete"} <= {w["code"] for w in s["validity"]["warnings"]}
    assert s["percentiles"]["ttft_s"]["count"] == 0 and s["run"]["requests_total"] == 0
