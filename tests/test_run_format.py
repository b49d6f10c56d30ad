"""What the load generator writes matches docs/run-format.md and satscope/run_format.py.

Makes one short real run (``satscope run`` against the deterministic server) and checks every
file of it: Parquet schemas against the schemas in code, the code against the tables in the doc,
``run.json``'s fields, statuses and clock, and that nothing secret is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from satscope import run_format as rf
from satscope.run_manifest import LoadgenFigures, Manifest, StageRecord, Validity
from tests.loadgen.conftest import fake_server, run_satscope

DOC = Path(__file__).resolve().parents[1] / "docs" / "run-format.md"
_MANIFEST_FIELDS = tuple(Manifest.from_json({"status": "running", "clock": {"monotonic_origin_s": 1.0,
                                               "wall_origin_unix_s": 2.0}, "start_s": 1.0}).to_json())  # fmt: skip


def _doc_table(heading: str) -> list[tuple[str, str]]:
    text = DOC.read_text()
    section = text.split(f"## `{heading}`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, flags=re.M)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fmt") / "run"
    with fake_server(ttft=0.01, itl=0.005) as server:
        res = run_satscope(
            "--target",
            server.url,
            "--users",
            "2",
            "--duration",
            "2",
            "--output-len",
            "5",
            "--api-key",
            "sk-format-SECRET",
            "--out",
            str(out),
        )
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize(
    "heading, schema", [("requests.parquet", rf.requests_schema), ("tokens.parquet", rf.tokens_schema)]
)
def test_code_schemas_match_the_doc(heading: str, schema) -> None:
    doc = _doc_table(heading)
    assert [name for name, _ in doc] == schema().names
    arrow_name = {"double": "float64", "string": "string", "int32": "int32", "bool": "bool"}
    for (name, kind), field in zip(doc, schema(), strict=True):
        assert kind.split(",")[0].split(" (")[0].strip() == arrow_name[str(field.type)], name
        assert field.nullable == ("nullable" in kind), name


@pytest.mark.parametrize(
    "name, schema",
    [(rf.REQUESTS_FILE, rf.requests_schema), (rf.TOKENS_FILE, rf.tokens_schema), (rf.LOADGEN_FILE, rf.samples_schema)],
)
def test_files_have_the_contract_schema(run_dir: Path, name: str, schema) -> None:
    table = pq.read_table(run_dir / name)
    assert table.schema.equals(schema(), check_metadata=False), (table.schema, schema())
    assert table.num_rows > 0


def test_request_rows_are_consistent(run_dir: Path) -> None:
    req = pq.read_table(run_dir / rf.REQUESTS_FILE).to_pandas()
    tok = pq.read_table(run_dir / rf.TOKENS_FILE).to_pandas()
    assert set(req.status) <= set(rf.REQUEST_STATUSES) and req.request_id.is_unique
    assert (req.ttft_s - (req.first_token - req.start)).abs().max() < 1e-12
    assert (req.e2e_s == req.end - req.start).all() and (req.intended_start <= req.start).all()
    assert req.offered_load.notna().all()
    assert set(tok.request_id) <= set(req.request_id)
    first = tok[tok["index"] == 0].set_index("request_id").t
    assert (req.set_index("request_id").first_token.loc[first.index] == first).all()
    lg = pq.read_table(run_dir / rf.LOADGEN_FILE).to_pandas()
    assert set(lg.metric) == {"loadgen_cpu", "loadgen_loop_lag_s", "loadgen_in_flight"}
    assert (lg.source == "loadgen").all() and (lg.labels == "worker=local").all()


def test_the_typed_manifest_matches_the_doc() -> None:
    """run.json's fields in docs/run-format.md are the typed manifest's, in its order; so are the
    documented fields of `stages`, `validity` and `loadgen`."""
    import dataclasses

    text = DOC.read_text().split("## `run.json`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", text, flags=re.M)
    assert tuple(n for row in rows for n in row if n) == _MANIFEST_FIELDS
    stage_row = next(line for line in text.splitlines() if line.startswith("| `stages` |"))
    stage_keys = re.search(r"`\{([^}]+)\}`", stage_row).group(1).replace(" ", "").split(",")
    assert stage_keys == [f.name for f in dataclasses.fields(StageRecord)]
    legacy = {"loadgen_saturated", "loadgen_saturated_reason"}
    for cls, where in ((Validity, "`validity`: "), (LoadgenFigures, "`loadgen` | object | ")):
        documented = re.findall(r"`(\w+)`", text.split(where, 1)[1].split("\n\n", 1)[0])
        fields = {f.name for f in dataclasses.fields(cls)} - legacy
        assert fields <= set(documented), (cls.__name__, fields - set(documented))


def test_manifest(run_dir: Path) -> None:
    m = json.loads((run_dir / rf.MANIFEST_FILE).read_text())
    assert tuple(m) == _MANIFEST_FIELDS
    assert m["format_version"] == rf.FORMAT_VERSION and m["status"] == "complete" and m["run_id"] == "run"
    assert m["start_s"] <= m["stages"][0]["start_s"] < m["stages"][-1]["end_s"] <= m["end_s"]
    assert set(m["stages"][0]) >= {"name", "start_s", "end_s", "kind", "users", "spawn_rate", "rate_rps", "arrival"}
    assert set(m["validity"]) == {
        "interrupted",
        "token_mismatches",
        "target_errors",
        "target_lost_s",
        "missing_probes",
        "notes",
    }
    assert set(m["loadgen"]) >= {
        "requests_sent",
        "records_written",
        "workers",
        "worker_clock_offsets_s",
        "cpu_max",
        "cpu_p90",
        "loop_lag_p99_s",
        "late_dispatches",
        "dropped_dispatches",
        "max_in_flight",
    }
    assert m["loadgen"]["records_written"] == pq.read_metadata(run_dir / rf.REQUESTS_FILE).num_rows
    assert set(m["files"]) == {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    assert "***" in m["command"] and m["target"]["served_by"] == "external"
    for f in run_dir.iterdir():
        assert b"sk-format-SECRET" not in f.read_bytes(), f.name
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_locust_stats_show_ttft_itl_and_e2e_per_request(run_dir: Path) -> None:
    import csv

    rows = {(r["Type"], r["Name"]): r for r in csv.DictReader((run_dir / "locust_stats.csv").open())}
    req = pq.read_table(run_dir / rf.REQUESTS_FILE).to_pandas()
    expected = {"TTFT": req.ttft_s.notna().sum(), "ITL": (req.output_chunks >= 2).sum(), "E2E": len(req)}
    counts = {kind: int(rows[(kind, "completions")]["Request Count"]) for kind in expected}
    # Locust writes its CSV from its own stats, which may miss the last requests drained at stop;
    # requests.parquet is the record. Each kind is fired once per request that has that timing.
    for kind, count in expected.items():
        assert 0.9 * count <= counts[kind] <= count, (kind, counts, expected)
    assert counts["TTFT"] == counts["E2E"] - (len(req) - expected["TTFT"]), counts
    assert float(rows[("TTFT", "completions")]["Median Response Time"]) < float(
        rows[("E2E", "completions")]["Median Response Time"]
    )
