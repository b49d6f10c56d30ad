"""`--shape search` on the bundled server with a known capacity: --max-num-seqs 5 runs 5 sequences
at once, so the search must bracket 5 users, exactly what the server itself reports running when
overloaded, in at most 8 levels, and leave an ordinary run directory behind.

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


def _search(stage_s: int, budget_s: int, seqs: int = 4) -> tuple[str, ...]:
    return ("--serve", *COMMON, f"--serve-arg=--max-num-seqs={seqs}", "--shape", "search", "--users", "32",
            "--stage-duration", str(stage_s), "--budget", str(budget_s), "--output-len", "8")  # fmt: skip


def test_the_search_brackets_the_batch_limit(tmp_path: Path) -> None:
    """5 slots, off the doubling path (1, 2, 4, 8): by the client's knee rule alone a level past it
    passes while it still gains half its load gain (the bracket would be 6-7); the server's own
    queue, read live from the probes, puts the limit at 5 exactly."""
    r = run_scenario(tmp_path, *_search(3, 40, seqs=5), timeout_s=120)
    found = json.loads((r.run_dir / "search.json").read_text())
    manifest = json.loads((r.run_dir / "run.json").read_text())
    assert manifest["status"] == "complete"
    levels = found["levels"]
    assert 3 <= len(levels) <= 8, levels
    # the truth: sequences the server ran at once in the most loaded level
    top = max(levels, key=lambda lv: lv["load"])
    capacity = float(np.median(server_metric(r, "requests_running", stage=top["stage"])))
    assert capacity == 5.0
    assert (found["good"], found["saturated"]) == (capacity, capacity + 1), found
    assert found["stopped"] == "bracket within the precision"
    saturated = next(lv for lv in levels if lv["load"] == found["saturated"])
    assert saturated["reason"].startswith("the server kept requests waiting (1 in the median"), saturated
    assert saturated["figures"]["server_waiting_p50"] == 1 and saturated["figures"]["server_samples"] >= 2
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
    lower end no further above it than the served rule allows, in at most 8 levels of 5 s. The search
    judged its levels by the rate an overloaded level served (satscope/loadgen/_open_judge.py): that
    is the server's capacity, within 10% of its own record."""
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
    assert found["capacity_per_s"] is not None and abs(found["capacity_per_s"] - capacity) <= 0.1 * capacity, found
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
    attainment as the search judged it is what the report computes for its stage (goodput_fraction),
    within the sampling noise of the part of the stage the search judged."""
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
    import pandas as pd

    per_stage = pd.read_parquet(r.run_dir / "requests.parquet")["stage"].value_counts()
    for lv in found["levels"]:
        judged, n = lv["figures"]["attainment"], lv["figures"]["slo_judged"]
        assert lv["saturated"] is (judged < 0.9) or lv["saturated"] is None, lv
        # the search judged n of the stage's requests (those after its first quarter and the backlog
        # the level before left), the report all N of them: as a subset's share, its sampling noise
        # is sqrt(p (1 - p) (1/n - 1/N)); 3 of those, and one request either way
        p, total = fraction[lv["stage"]], int(per_stage[lv["stage"]])
        allowed = 3 * np.sqrt(max(p * (1 - p), 0.05) * max(1 / n - 1 / total, 0.0)) + 1 / n
        assert abs(judged - p) <= allowed, (lv, p, total, allowed)
    assert f"Max goodput load between {good:g} and {bad:g} users (90% of requests within TTFT ≤ 0.2 s" in r.verdict
    assert r.summary["search"]["goal"] == "slo"


def test_workers_follow_the_levels_their_master_decides(tmp_path: Path) -> None:
    """`--rate` with `--workers 2`: each worker dispatches its half of the level's rate as the master
    announces it, and tells the master what it dispatched (the records lack the requests in flight).
    The master decides from its workers' records, which reach it up to a second late: its measured
    span ends where every worker's records and dispatches were known complete."""
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
        # a master's records arrive from its workers every second: its span stops where they were all
        # known complete, before the level's end (the margin a batch keeps: 0.05 s) and at most the
        # second between batches (and the 0.3 s lead of its decision) earlier
        assert 0.75 * span - 1.5 < fig["span_s"] < 0.75 * span - 0.04, (fig, span)


def test_the_search_finds_the_slots_of_a_llama_cpp_like_server(tmp_path: Path) -> None:
    """A server with 3 parallel slots and a line for the rest, as llama-server runs (`--parallel 3`),
    closing every kept-alive connection after its response as llama-server does, and exporting its
    `llamacpp:requests_processing` / `requests_deferred` gauges. By the client's knee rule alone 4
    users still gain half their load gain over 2 (the bracket would be 4-5); the server's deferred
    requests, read live from the probes, say 3."""
    from tests.loadgen.conftest import fake_server

    with fake_server(ttft=0.03, itl=0.03, close_after_response=0.0, args=("--slots", "3")) as server:
        r = run_scenario(tmp_path, "--target", server.url, "--shape", "search", "--users", "32", "--stage-duration",
                         "3", "--budget", "40", "--output-len", "8", "--input-len", "16", "--quiet", "--no-gpu",
                         timeout_s=120)  # fmt: skip
    found = json.loads((r.run_dir / "search.json").read_text())
    probes = json.loads((r.run_dir / "probes.json").read_text())
    assert probes["engine"] == "llamacpp", probes
    levels = [(lv["load"], lv["saturated"]) for lv in found["levels"]]
    assert (found["good"], found["saturated"]) == (3, 4) and len(levels) <= 8, levels
    four = next(lv for lv in found["levels"] if lv["load"] == 4)
    assert four["reason"].startswith("the server kept requests waiting"), four
    # every request answered, none lost to the connections the server closed
    import pandas as pd

    req = pd.read_parquet(r.run_dir / "requests.parquet")
    assert (req["status"] == "ok").all(), req["status"].value_counts()
    # the truth, from the server's own record: never more than 3 served at once
    assert max(server_metric(r, "requests_running")) == 3
