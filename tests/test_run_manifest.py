"""The typed run.json: what a reader accepts, what it refuses (with the field named), and that a
manifest survives the round trip through JSON unchanged, old runs' fields included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from satscope.run_manifest import Manifest, ManifestError, StageRecord

ROOT = Path(__file__).resolve().parents[1]


def _minimal() -> dict:
    return {"status": "complete", "clock": {"monotonic_origin_s": 10.0, "wall_origin_unix_s": 1.7e9}, "start_s": 10.0}


def test_round_trip_keeps_every_field_and_fills_defaults() -> None:
    m = Manifest.from_json(_minimal())
    assert m.stages == [] and m.validity.notes == [] and m.loadgen.requests_sent == 0 and m.end_s is None
    m.stages.append(StageRecord("step-1", 11.0, 21.0, "closed", users=4.0, spawn_rate=4.0))
    m.validity.notes.append("a note")
    again = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and again.to_json() == m.to_json()
    assert "loadgen_saturated" not in again.to_json()["validity"]  # never written by this code ...
    old = _minimal() | {"validity": {"loadgen_saturated": True, "loadgen_saturated_reason": "CPU 99%"}}
    assert Manifest.from_json(old).to_json()["validity"]["loadgen_saturated_reason"] == "CPU 99%"  # ... kept if read


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 2}, "format_version 2 is newer than this satscope reads (1); upgrade satscope"),
        ({"status": "done"}, "status must be one of running, complete, interrupted, failed, abandoned"),
        ({"start_s": "soon"}, "start_s must be a number, not 'soon'"),
        ({"clock": {"monotonic_origin_s": None}}, "clock.monotonic_origin_s must be a number"),
        (
            {"stages": [{"name": "s", "start_s": 0, "end_s": 1, "kind": "both"}]},
            "stages[0].kind must be closed or open",
        ),
        ({"stages": [{"name": "s", "start_s": "0", "end_s": 1}]}, "stages[0].start_s must be a number"),
        ({"validity": {"interrupted": "no"}}, "validity.interrupted must be true or false"),
        ({"validity": {"notes": "one"}}, "validity.notes must be a list"),
        ({"loadgen": {"requests_sent": 2.5}}, "loadgen.requests_sent must be a whole number"),
        ({"loadgen": {"cpu_p90": "high"}}, "loadgen.cpu_p90 must be a number or null"),
    ],
)
def test_bad_fields_are_named(change: dict, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_json(_minimal() | change)
    assert message in str(err.value)


def test_a_writer_cannot_drop_a_field_unnoticed() -> None:
    for extra, where in (({"probes": {}}, "run.json"), ({"validity": {"loadgen_saturated_why": "x"}}, "validity")):
        Manifest.from_json(_minimal() | extra)  # a reader takes old and unknown fields
        with pytest.raises(ManifestError, match=f"{where} has fields the run format does not define"):
            Manifest.from_json(_minimal() | extra, strict=True)


def test_satscope_report_refuses_a_bad_manifest_in_one_line(tmp_path: Path) -> None:
    from satscope.reports._synthetic import SyntheticRun, write_synthetic_run

    run = write_synthetic_run(tmp_path / "run", SyntheticRun(kind="none", levels=(1, 2), stage_s=2.0))
    manifest = json.loads((run / "run.json").read_text())
    manifest["stages"][1]["end_s"] = "later"
    (run / "run.json").write_text(json.dumps(manifest))
    res = subprocess.run([sys.executable, "-m", "satscope", "report", str(run)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "run.json: stages[1].end_s must be a number or null, not 'later'" in line
