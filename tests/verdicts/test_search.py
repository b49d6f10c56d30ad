"""`--shape search` on the bundled server with a known capacity: --max-num-seqs 4 runs 4 sequences
at once, so the search must bracket 4 users, within one user of what the server itself reports
running when overloaded, in at most 8 levels, and leave an ordinary run directory behind.

8-token answers (about 0.3 s a request at 30 ms a step) give each 3 s level enough completions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from satscope.reports._thresholds import THRESHOLDS
from tests.verdicts.scenarios import COMMON, run_scenario, server_metric

pytestmark = pytest.mark.slow


def _search(stage_s: int, budget_s: int) -> tuple[str, ...]:
    return ("--serve", *COMMON, "--serve-arg=--max-num-seqs=4", "--shape", "search", "--users", "32",
            "--stage-duration", str(stage_s), "--budget", str(budget_s), "--output-len", "8")  # fmt: skip


def test_the_search_brackets_the_batch_limit(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, *_search(3, 40), timeout_s=120)
    found = json.loads((r.run_dir / "search.json").read_text())
    manifest = json.loads((r.run_dir / "run.json").read_text())
    assert manifest["status"] == "complete"
    levels = found["levels"]
    assert 3 <= len(levels) <= 8, levels
    # the truth: sequences the server ran at once in the most loaded level
    top = max(levels, key=lambda lv: lv["load"])
    capacity = float(np.median(server_metric(r, "requests_running", stage=top["stage"])))
    assert capacity == 4.0
    assert abs(found["good"] - capacity) <= 1 and found["saturated"] > capacity, found
    assert found["saturated"] - found["good"] <= 1 and found["stopped"] == "bracket within the precision"
    # every level is an ordinary hold stage, in the order run, in run.json and requests.parquet
    stages = manifest["stages"]
    names = [f"step-{i + 1}" for i in range(len(levels))]
    assert [s["name"] for s in stages] == [lv["stage"] for lv in levels] == names
    assert [s["users"] for s in stages] == [lv["load"] for lv in levels]
    assert all(abs(s["end_s"] - s["start_s"] - 3.0) < 1.1 for s in stages)
    report_stages = {row["stage"]: row["offered_load"] for row in r.summary["stages"]}
    assert report_stages == {lv["stage"]: lv["load"] for lv in levels}
    # the report carries the bracket (its own knee, over whole stages, may differ on 3 s levels)
    block = r.summary["search"]
    assert (block["good"], block["saturated"], block["levels_run"]) == (found["good"], found["saturated"], len(levels))
    assert f"saturates between {found['good']:g} and {found['saturated']:g} users" in r.verdict


def test_an_open_loop_search_brackets_the_rate_the_server_serves(tmp_path: Path) -> None:
    """`--rate 64`: Poisson levels from 4 req/s, each dispatcher following the search's rate as it is
    decided. The truth is the server's own record: what it generated per second in the saturated
    levels over the 8 tokens of an answer. The bracket's upper end lies within 10% of it or beyond; its
    lower end no further above it than the served rule allows, in at most 8 levels of 5 s."""
    r = run_scenario(tmp_path, "--serve", *COMMON, "--serve-arg=--max-num-seqs=4", "--shape", "search", "--rate", "64",
                     "--start-load", "4", "--stage-duration", "5", "--budget", "40", "--output-len", "8",
                     timeout_s=150)  # fmt: skip
    found = json.loads((r.run_dir / "search.json").read_text())
    manifest = json.loads((r.run_dir / "run.json").read_text())
    assert manifest["status"] == "complete" and found["kind"] == "open"
    levels = found["levels"]
    assert 3 <= len(levels) <= 8 and found["good"] is not None and found["saturated"] is not None, found
    saturated = [lv["stage"] for lv in levels if lv["saturated"]]
    capacity = max(float(np.mean(server_metric(r, "generation_tokens_per_s", stage=s))) for s in saturated) / 8
    # the good level was served by the judge's rule: at least served_share of what it offered, less
    # the count noise of its two ends (reports/_knee.py), so the truth may lie that far below it
    good = next(lv for lv in levels if lv["load"] == found["good"] and not lv["saturated"])
    fig = good["figures"]
    noise = 2.0 * np.sqrt(1.0 + found["good"] * (fig["e2e_p50_s"] or 0.0)) / fig["span_s"]
    assert THRESHOLDS.served_share * found["good"] - noise <= capacity <= 1.1 * found["saturated"], (capacity, found)
    # the dispatchers followed every level: each stage dispatched its rate (Poisson: within 4 sigma)
    import pandas as pd

    req = pd.read_parquet(r.run_dir / "requests.parquet")
    for st, lv in zip(manifest["stages"], levels, strict=True):
        assert st["rate_rps"] == lv["load"]
        n = int((req["stage"] == st["name"]).sum())
        expected = lv["load"] * (st["end_s"] - st["start_s"])
        assert abs(n - expected) <= 4 * np.sqrt(expected) + 2, (st["name"], n, expected)
    # the report judges the same stages with the same open-loop rule, and names the bracket
    print(f"open-loop search: capacity {capacity:.2f} req/s, levels {[(lv['load'], lv['saturated']) for lv in levels]}")
    assert f"saturates between {found['good']:g} and {found['saturated']:g} req/s" in r.verdict


def test_an_slo_search_finds_the_max_goodput_load(tmp_path: Path) -> None:
    """`--slo ttft=0.2 --slo-attainment 0.9`: up to 4 users every request starts within a few 30 ms
    steps; past 4 the extra users' requests wait for a slot, a whole 8-token answer (about 0.3 s).
    The max goodput load lies between 2 and 8 users, the bracket is one user wide, and each level's
    attainment as the search judged it is what the report computes for its stage (goodput_fraction)."""
    r = run_scenario(tmp_path, *_search(3, 40), "--slo", "ttft=0.2", "--slo-attainment", "0.9", timeout_s=120)
    found = json.loads((r.run_dir / "search.json").read_text())
    assert found["settings"]["slos"]["ttft_s"] == 0.2 and found["settings"]["attainment"] == 0.9
    good, bad = found["good"], found["saturated"]
    assert good is not None and bad is not None and 2 <= good < bad <= 8 and bad - good <= 1, found
    assert len(found["levels"]) <= 8
    from satscope.reports import analyze

    summary = analyze(r.run_dir, slos=["ttft=0.2"])  # what `satscope run --slo` builds its report with
    fraction = {row["stage"]: row["goodput_fraction"] for row in summary["stages"]}
    print("SLO search:", [(lv["load"], lv["figures"]["attainment"], fraction[lv["stage"]]) for lv in found["levels"]])
    for lv in found["levels"]:
        judged = lv["figures"]["attainment"]
        assert lv["saturated"] is (judged < 0.9) or lv["saturated"] is None, lv
        assert abs(judged - fraction[lv["stage"]]) <= 0.15, (lv, fraction[lv["stage"]])
    assert f"Max goodput load between {good:g} and {bad:g} users (90% of requests within TTFT ≤ 0.2 s" in r.verdict
    assert r.summary["search"]["goal"] == "slo"


def test_workers_follow_the_levels_their_master_decides(tmp_path: Path) -> None:
    """`--rate` with `--workers 2`: each worker dispatches its half of the level's rate as the master
    announces it, and tells the master what it dispatched (the records lack the requests in flight).
    The master decides from its workers' records, which reach it a second late: its measured span ends
    that much before the level does."""
    r = run_scenario(tmp_path, "--serve", *COMMON, "--serve-arg=--max-num-seqs=4", "--shape", "search", "--rate", "64",
                     "--start-load", "4", "--stage-duration", "5", "--budget", "20", "--output-len", "8",
                     "--workers", "2", timeout_s=120)  # fmt: skip
    import pandas as pd

    found = json.loads((r.run_dir / "search.json").read_text())
    manifest = json.loads((r.run_dir / "run.json").read_text())
    req = pd.read_parquet(r.run_dir / "requests.parquet")
    assert manifest["status"] == "complete" and found["kind"] == "open" and len(found["levels"]) >= 3
    assert set(req["worker"]) == {"w0", "w1"}
    for st, lv in zip(manifest["stages"], found["levels"], strict=True):
        span = st["end_s"] - st["start_s"]
        expected = lv["load"] * span
        n = int((req["stage"] == st["name"]).sum())
        assert abs(n - expected) <= 4 * np.sqrt(expected) + 2, (st["name"], n, expected)
        # what the master counted from the workers' messages, against what their records show
        fig = lv["figures"]
        start = st["start_s"] + 0.25 * (span - 0.3)  # its first quarter left out; it began 0.3 s after its decision
        counted = int(((req["intended_start"] >= start) & (req["intended_start"] < start + fig["span_s"])).sum())
        assert fig["dispatched"] is not None and abs(fig["dispatched"] - counted) <= 1, (fig, counted)
        # a master's records arrive from its workers every second: its span stops that much earlier
        assert fig["span_s"] < 0.75 * span - 1.0, (fig, span)
