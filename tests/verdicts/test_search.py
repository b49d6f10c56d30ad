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


def test_a_master_decides_from_its_workers_records(tmp_path: Path) -> None:
    """With --workers the shape runs in the master, whose records arrive from the worker every second:
    the same bracket, from 5 s levels (each one's throughput span ends 1.5 s early there)."""
    r = run_scenario(tmp_path, *_search(5, 60), "--workers", "1", timeout_s=150)
    found = json.loads((r.run_dir / "search.json").read_text())
    manifest = json.loads((r.run_dir / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["workers"] == 1
    assert 3 <= len(found["levels"]) <= 8 and abs(found["good"] - 4) <= 1 and found["saturated"] > 4, found
    assert [s["name"] for s in manifest["stages"]] == [lv["stage"] for lv in found["levels"]]
    assert all(lv["figures"]["span_s"] < 5 * 0.75 - 1.0 for lv in found["levels"])  # the master's lag
