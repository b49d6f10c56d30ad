"""Closed loop: a small KV pool is named KV cache, --max-num-seqs 2 the batch limit, and the named
levels lie within a band of the true capacity (sequences the server ran at once, from its record).

Step 1 → 5 users, 4 s a step, 32-token answers to prompts of about 60 tokens (the calibrated
``--input-len 16`` words): six 16-token KV blocks a sequence. The true capacity is the median of
the sequences the server reports running during the last, overloaded, step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verdicts.scenarios import COMMON, cpu_burner, run_scenario, server_metric

pytestmark = pytest.mark.slow

STEPS = ("--serve", *COMMON, "--shape", "step", "--start-load", "1", "--users", "5", "--steps", "5",
         "--duration", "20", "--output-len", "32")  # fmt: skip


def _within_capacity(s: dict, capacity: float) -> None:
    """The named levels bracket the capacity: safe ≤ it, saturation point within one level of it,
    knee above it."""
    sat = s["saturation"]
    assert sat["found"], s["verdict"]
    assert capacity - 1 <= sat["offered_load"] <= capacity + 1, s["verdict"]
    assert sat["knee_offered_load"] > capacity, s["verdict"]
    safe = sat["safe"]["offered_load"]
    assert safe is not None and safe <= capacity, s["verdict"]
    assert f"{sat['offered_load_named']:g} users" in s["verdict"] and "safe operating point" in s["verdict"].lower()


def _capacity(r: object) -> float:
    import numpy as np

    return float(np.median(server_metric(r, "requests_running", stage="step-5")))


def test_small_kv_pool_is_kv_cache(tmp_path: Path) -> None:
    # 12 blocks hold two 6-block sequences; a third waits for room (or is preempted)
    r = run_scenario(tmp_path, *STEPS, "--serve-arg=--kv-blocks=12")
    print(r.row("closed, --kv-blocks 12"))
    assert r.kind == "kv_cache", r.verdict
    assert "kv_cache_usage" in {e["metric"] for e in r.summary["bottleneck"]["evidence"]}
    capacity = _capacity(r)
    assert 1 <= capacity <= 2
    _within_capacity(r.summary, capacity)


def test_max_num_seqs_2_is_batch_limit(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, *STEPS, "--serve-arg=--max-num-seqs=2")
    print(r.row("closed, --max-num-seqs 2"))
    assert r.kind == "batch_limit", r.verdict
    evidence = {e["metric"]: e["value"] for e in r.summary["bottleneck"]["evidence"]}
    assert evidence["requests_running"] == pytest.approx(2.0, abs=0.2) and evidence["kv_cache_usage"] < 0.5
    capacity = _capacity(r)
    assert capacity == 2.0
    _within_capacity(r.summary, capacity)


def test_batch_limit_with_a_cpu_burner_beside_it(tmp_path: Path) -> None:
    """Every core spun by other processes: the verdict holds, and the report says the host was busy."""
    with cpu_burner(60.0):
        r = run_scenario(tmp_path, *STEPS, "--serve-arg=--max-num-seqs=2")
    print(r.row("closed, --max-num-seqs 2, CPU burner"))
    assert r.kind == "batch_limit", r.verdict
    _within_capacity(r.summary, 2.0)
    assert "host_contended" in r.warnings(), r.warnings()
    assert "used by other processes" in r.warnings()["host_contended"]
