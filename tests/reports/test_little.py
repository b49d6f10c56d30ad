"""Little's law per level: consistent records pass, doctored ones are flagged as validity warnings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from satscope.reports import analyze
from satscope.reports._little import level_little
from satscope.run_format import REQUESTS_FILE, write_parquet_atomic


@pytest.mark.parametrize("seed", range(20))
def test_self_consistent_records_always_pass_whatever_the_edges(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    start = rng.uniform(0.0, 20.0, n)
    end = start + rng.exponential(rng.uniform(0.05, 4.0), n)
    a, b = sorted(rng.uniform(0.0, 20.0, 2))
    f = level_little(start, end, end - start, a, b)
    assert abs(f["in_flight_mean"] - f["in_flight_little"]) <= f["tolerance"]


def test_latencies_that_do_not_match_the_timeline_are_caught() -> None:
    rng = np.random.default_rng(5)
    start = np.sort(rng.uniform(0.0, 100.0, 2000))  # 20 req/s for 100 s, about 20 in flight
    end = start + rng.exponential(1.0, len(start))
    for factor in (0.8, 1.25):
        f = level_little(start, end, factor * (end - start), 20.0, 80.0)
        assert abs(f["in_flight_mean"] - f["in_flight_little"]) > f["tolerance"], (factor, f)


@pytest.mark.parametrize("fields", [{"kind": "kv_cache"}, {"kind": "batch_limit", "open_loop": True}])
def test_a_run_s_records_pass_little_s_law(synth: Callable[..., Path], fields: dict) -> None:
    s = analyze(synth(**fields))
    little = s["little"]
    assert little["checked"] and little["consistent"], little
    assert len(little["levels"]) == len(s["stages"])
    for row in little["levels"]:
        assert row["in_flight_mean"] > 0 and row["consistent"]
        if not fields.get("open_loop"):  # closed loop: about the users in flight
            assert row["users_consistent"] and row["in_flight_mean"] <= row["users"] * 1.02
    codes = {w["code"] for w in s["validity"]["warnings"]}
    assert not codes & {"little_law_mismatch", "users_not_in_flight"}


def _doctor(run: Path, change: Callable[[dict[str, np.ndarray]], np.ndarray | None]) -> None:
    table = pq.read_table(run / REQUESTS_FILE)
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in ("stage", "start", "end", "e2e_s")}
    keep = change(cols)
    for name in ("end",):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(cols[name]))
    if keep is not None:
        table = table.filter(pa.array(keep))
    write_parquet_atomic(run / REQUESTS_FILE, table)


def test_end_times_shifted_against_the_latencies_are_flagged(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")
    before = analyze(run)

    def shift(cols: dict[str, np.ndarray]) -> None:
        mask = cols["stage"] == "users-4"
        cols["end"] = np.where(mask, cols["end"] + 0.4, cols["end"])  # e2e_s left as recorded

    _doctor(run, shift)
    s = analyze(run)
    flagged = [r["stage"] for r in s["little"]["levels"] if not r["consistent"]]
    assert flagged == ["users-4"], s["little"]
    warning = next(w for w in s["validity"]["warnings"] if w["code"] == "little_law_mismatch")
    assert warning["severity"] == "warning" and "users-4" in warning["message"]
    assert s["validity"]["ok"] == before["validity"]["ok"]  # a warning, not a verdict change
    assert s["saturation"]["offered_load"] == before["saturation"]["offered_load"]


def test_users_missing_from_the_records_are_flagged(scratch_run: Callable[..., Path]) -> None:
    run = scratch_run(kind="kv_cache")

    def drop_half(cols: dict[str, np.ndarray]) -> np.ndarray:
        in_stage = cols["stage"] == "users-16"
        return ~in_stage | (np.cumsum(in_stage) % 2 == 0)  # every other request of that stage lost

    _doctor(run, drop_half)
    s = analyze(run)
    rows = {r["stage"]: r for r in s["little"]["levels"]}
    assert rows["users-16"]["users_consistent"] is False and rows["users-16"]["consistent"]
    assert all(r["users_consistent"] for k, r in rows.items() if k != "users-16")
    message = next(w["message"] for w in s["validity"]["warnings"] if w["code"] == "users_not_in_flight")
    assert "at 16 users" in message


def test_pooled_levels_are_not_checked(synth: Callable[..., Path], tmp_path: Path) -> None:
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(synth(kind="none"), run)
    manifest = json.loads((run / "run.json").read_text())
    for stage in manifest["stages"]:
        stage["profile"] = "linear"
    (run / "run.json").write_text(json.dumps(manifest))
    s = analyze(run)
    assert s["saturation"]["method"] == "load_bins"
    assert not s["little"]["checked"] and "pooled" in s["little"]["reason"]


def test_a_real_short_run_passes_little_s_law(tmp_path: Path) -> None:
    from tests.loadgen.conftest import fake_server, run_satscope

    out = tmp_path / "run"
    with fake_server(ttft=0.03, itl=0.01) as server:  # 0.22 s a request, no limit on concurrency
        res = run_satscope(
            *("--target", server.url, "--shape", "step", "--users", "8", "--start-load", "2", "--steps", "4"),
            *("--duration", "8", "--output-len", "20", "--out", str(out)),
        )
    assert res.returncode == 0, res.stderr
    s = analyze(out)
    little = s["little"]
    assert [r["users"] for r in little["levels"]] == [2.0, 4.0, 6.0, 8.0]
    for row in little["levels"]:
        assert row["consistent"], row
        # a real closed loop keeps its users in flight: the check holds with room to spare
        assert row["users_consistent"] and row["in_flight_mean"] >= 0.9 * row["users"], row
    assert s["curve"]["fitted"] and s["curve"]["loads"] == 4


def test_the_level_a_warmup_cut_is_not_held_to_its_users(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"), warmup_s=3.0)
    first, *rest = s["little"]["levels"]
    assert first["consistent"] and first["users_consistent"] is None and first["users"] == 1.0
    assert all(r["consistent"] and r["users_consistent"] for r in rest)
