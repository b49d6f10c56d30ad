"""The analysis on hand-built runs with a known knee and a known bottleneck of each kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from satscope.reports import analyze
from satscope.reports._synthetic import SyntheticRun

SPEC = SyntheticRun()
# The synthetic server: one request = TTFT + 31 gaps = 0.72 s, 32 output tokens, linear up to 8 users.
E2E = SPEC.ttft_s + (SPEC.output_tokens - 1) * SPEC.itl_s
EXPECTED_TOKENS_PER_S = SPEC.knee_load * SPEC.output_tokens / E2E  # ≈ 356


@pytest.mark.parametrize(
    ("kind", "evidence_metric"),
    [
        ("kv_cache", "kv_cache_usage"),
        ("memory_bandwidth", "gpu_dram_bw_util"),
        ("compute", "gpu_sm_active"),
        ("batch_limit", "requests_running"),
        ("client", "loadgen_cpu_p90"),
        ("errors", "error_rate"),
    ],
)
def test_each_bottleneck_kind_is_named_with_its_numbers(
    synth: Callable[..., Path], kind: str, evidence_metric: str
) -> None:
    s = analyze(synth(kind=kind))
    bn = s["bottleneck"]
    assert bn["kind"] == kind, bn["sentence"]
    assert evidence_metric in {e["metric"] for e in bn["evidence"]}
    assert s["saturation"]["found"] and s["saturation"]["offered_load"] == 8.0
    assert s["saturation"]["knee_offered_load"] == 16.0
    # the verdict names both the saturation figures and the bottleneck's
    assert "Saturates at 8 users" in s["verdict"] and bn["sentence"] in s["verdict"]
    others = [c for c in bn["candidates"] if c["hit"] and c["kind"] != kind]
    if kind != "errors":  # past the knee the errors run is also full of errors, but later
        assert all(c["at_s"] is None or c["at_s"] >= (bn["at_s"] or 0) for c in others)


def test_kv_cache_verdict_figures(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    sat, bn = s["saturation"], s["bottleneck"]
    assert sat["stage"] == "users-8" and sat["knee_stage"] == "users-16"
    assert sat["output_tokens_per_s"] == pytest.approx(EXPECTED_TOKENS_PER_S, rel=0.1)
    assert sat["requests_per_s"] == pytest.approx(SPEC.knee_load / E2E, rel=0.1)
    assert sat["ttft_p99_s"] == pytest.approx(SPEC.ttft_s, rel=0.1)
    assert sat["itl_p99_s"] == pytest.approx(SPEC.itl_s, rel=0.1)
    assert sat["knee_scaling_efficiency"] < 0.5
    assert bn["stage"] == "users-8" and bn["at_s"] == pytest.approx(30.0)
    ev = {e["metric"]: e for e in bn["evidence"]}
    assert ev["kv_cache_usage"]["value"] >= 0.95 and ev["kv_cache_usage"]["op"] == ">="
    assert ev["preemptions_per_s"]["value"] > 0
    assert "preemptions/s" in bn["sentence"] and "97%" in bn["sentence"]


def test_no_knee_when_throughput_keeps_scaling(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="none"))
    assert not s["saturation"]["found"]
    assert s["saturation"]["offered_load"] == 32.0  # the highest load tested, a lower bound
    assert s["bottleneck"]["kind"] == "none"
    assert s["verdict"].startswith("No saturation up to 32 users")
    effs = [st["scaling_efficiency"] for st in s["stages"][1:]]
    assert all(e == pytest.approx(1.0, abs=0.15) for e in effs)


def test_stage_table_has_each_stage_in_order_with_latencies(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    stages = s["stages"]
    assert [st["stage"] for st in stages] == [f"users-{n}" for n in SPEC.levels]
    assert [st["start_at_s"] for st in stages] == [10.0 * i for i in range(len(SPEC.levels))]
    for st in stages:
        assert st["ttft_p50_s"] <= st["ttft_p90_s"] <= st["ttft_p99_s"]
        assert st["itl_p50_s"] <= st["itl_p99_s"]
        assert st["error_rate"] == 0.0
    # past the knee, the extra latency is queueing: TTFT grows, throughput does not
    assert stages[-1]["ttft_p99_s"] > 10 * stages[3]["ttft_p99_s"]
    assert stages[4]["output_tokens_per_s"] == pytest.approx(stages[3]["output_tokens_per_s"], rel=0.1)
    assert stages[-1]["kv_cache_usage_max"] >= 0.95 and stages[0]["kv_cache_usage_max"] < 0.5
    assert stages[-1]["requests_waiting_mean"] == pytest.approx(24.0, abs=0.5)


def test_open_loop_latency_from_intended_send_time(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache", open_loop=True))
    assert s["saturation"]["load_kind"] == "rate_rps"
    assert s["saturation"]["offered_load"] == pytest.approx(8 / E2E)
    last = s["stages"][-1]
    # sends lagged their schedule, so coordinated-omission-corrected latency is larger
    assert last["ttft_intended_p99_s"] > 1.5 * last["ttft_p99_s"]
    assert s["percentiles"]["e2e_intended_s"]["p99"] > s["percentiles"]["e2e_s"]["p99"]
    assert "req/s offered" in s["verdict"]


def test_correlations_link_kv_fill_with_latency(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    corr = {c["metric"]: c for c in s["correlations"]}
    assert {"kv_cache_usage", "requests_waiting", "gpu_dram_bw_util"} <= set(corr)
    assert corr["requests_waiting"]["ttft_p99_s"] > 0.7
    assert corr["kv_cache_usage"]["windows"] >= 50


def test_client_saturation_makes_the_run_invalid(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="client"))
    assert not s["validity"]["ok"]
    codes = {w["code"]: w for w in s["validity"]["warnings"]}
    assert codes["loadgen_saturated"]["severity"] == "error"
    assert "worker local: CPU p90 99% of a core" in codes["loadgen_saturated"]["message"]


def test_a_run_from_before_loadgen_parquet_keeps_its_recorded_client_judgement(synth: Callable[..., Path]) -> None:
    """Early runs recorded the load generator's own verdict in run.json and had no loadgen.parquet."""
    import json

    run = synth(kind="client")
    (run / "loadgen.parquet").unlink()
    manifest = json.loads((run / "run.json").read_text())
    manifest["validity"] |= {"loadgen_saturated": True, "loadgen_saturated_reason": "load generator CPU at 99%"}
    (run / "run.json").write_text(json.dumps(manifest))
    s = analyze(run)
    assert s["bottleneck"]["kind"] == "client" and "CPU at 99%" in s["bottleneck"]["sentence"]
    assert [e["metric"] for e in s["bottleneck"]["evidence"]] == ["loadgen_saturated"]


def test_errors_verdict_quotes_the_error_and_rate(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="errors"))
    bn = s["bottleneck"]
    assert "queue full" in bn["sentence"]
    assert bn["evidence"][0]["value"] >= 0.3
    assert s["run"]["requests_failed"] > 0
    assert s["stages"][-1]["error_rate"] == pytest.approx(0.75, abs=0.1)


def test_mbu_and_mfu_from_the_model_description(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    util = s["utilization"]
    assert util["peak_source"] == "table:H200" and util["peak_memory_bandwidth_bytes_per_s"] == 4.8e12
    sat = next(st for st in s["stages"] if st["stage"] == "users-8")
    steps_per_s = sat["output_tokens_per_s"] / sat["batch_size_mean"]
    weights = 14e9 * steps_per_s
    assert sat["mbu"] == pytest.approx(weights / 4.8e12, rel=0.25)  # KV reads add a little
    assert sat["mfu"] == pytest.approx(2 * 7e9 * sat["total_tokens_per_s"] / 989e12, rel=1e-6)
    assert util["mbu_max"] >= sat["mbu"]


def test_cpu_server_uses_recorded_host_bandwidth_or_says_why_not(scratch_run: Callable[..., Path]) -> None:
    import json

    run = scratch_run(kind="kv_cache", gpu=False)
    util = analyze(run)["utilization"]
    assert util["mbu_max"] is None and "host memory bandwidth" in util["note"]
    manifest = json.loads((run / "run.json").read_text())
    manifest["host"]["memory_bandwidth_bytes_per_s"] = 20e9
    (run / "run.json").write_text(json.dumps(manifest))
    util = analyze(run)["utilization"]
    assert util["peak_source"] == "run:host_memory_bandwidth" and util["mbu_max"] > 0


def test_single_stage_ramp_is_binned_by_offered_load(scratch_run: Callable[..., Path]) -> None:
    """A run whose one stage ramps the load: levels come from the requests' own offered load."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    run = scratch_run(kind="kv_cache")
    table = pq.read_table(run / "requests.parquet")
    table = table.set_column(table.schema.get_field_index("stage"), "stage", pa.array(["ramp"] * table.num_rows))
    pq.write_table(table, run / "requests.parquet")
    manifest = json.loads((run / "run.json").read_text())
    first, last = manifest["stages"][0], manifest["stages"][-1]
    manifest["stages"] = [first | {"name": "ramp", "end_s": last["end_s"], "users": 32, "profile": "linear"}]
    (run / "run.json").write_text(json.dumps(manifest))
    s = analyze(run)
    sat = s["saturation"]
    assert sat["method"] == "load_bins" and sat["stage"] is None
    assert sat["found"] and sat["offered_load"] == 8.0 and sat["knee_offered_load"] == 16.0
    assert sat["output_tokens_per_s"] == pytest.approx(EXPECTED_TOKENS_PER_S, rel=0.15)
    assert s["bottleneck"]["kind"] == "kv_cache"
    assert len(s["stages"]) == 1


def test_cpu_server_on_a_gpu_host_is_not_measured_against_hbm(scratch_run: Callable[..., Path]) -> None:
    import json

    run = scratch_run(kind="kv_cache")
    probes = json.loads((run / "probes.json").read_text())
    probes["model"]["device"] = "cpu"
    (run / "probes.json").write_text(json.dumps(probes))
    util = analyze(run)["utilization"]
    assert util["device"] == "cpu" and util["gpu_name"] == "NVIDIA H200"
    assert util["peak_source"] != "table:H200" and util["mbu_max"] is None
