"""A real `satscope run` against a server that streams reasoning, then content, then a tool call.

The server (``tests/loadgen/reasoning_server.py``) records when it flushed each chunk; every time
the load generator wrote is checked against that record, with a tolerance of a third of the
server's pause between phases: a TTFT taken at the first content chunk, or a TTFO at the first
reasoning chunk, would be off by at least a whole pause.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from satscope.reports import build_report
from satscope.run_format import MANIFEST_FILE, REQUESTS_FILE, TOKENS_FILE
from tests.loadgen.conftest import run_satscope
from tests.loadgen.reasoning_server import PHASE_GAP_S, THINK_DELIMITERS, ReasoningServer, Sent

TOLERANCE_S = PHASE_GAP_S / 3


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Sent]]:
    out = tmp_path_factory.mktemp("reasoning") / "run"
    with ReasoningServer() as server:
        res = run_satscope(
            "--target", server.url, "--endpoint", "chat", "--users", "2", "--duration", "2", "--out", str(out)
        )
        sent = server.sent
    assert res.returncode == 0, res.stderr
    return out, sent


@pytest.fixture(scope="module")
def requests(run: tuple[Path, dict[str, Sent]]) -> pd.DataFrame:
    req = pq.read_table(run[0] / REQUESTS_FILE).to_pandas().set_index("request_id")
    assert len(req) >= 4 and (req["status"] == "ok").all(), req[["status", "error"]]
    assert set(req.index) <= set(run[1]), "every request the load generator recorded reached the server"
    return req


def test_ttft_is_the_first_reasoning_token_and_ttfo_the_first_visible_one(
    run: tuple[Path, dict[str, Sent]], requests: pd.DataFrame
) -> None:
    sent = run[1]
    for rid, r in requests.iterrows():
        s = sent[rid]
        assert r["first_token"] == pytest.approx(s.first("reasoning"), abs=TOLERANCE_S), rid
        assert r["first_reasoning_token"] == r["first_token"], rid
        assert r["first_visible_token"] == pytest.approx(s.first("content"), abs=TOLERANCE_S), rid
        assert r["ttfo_s"] == pytest.approx(r["first_visible_token"] - r["start"], abs=1e-12)
        # the thinking phase sits between the two: its chunks and the pause after them
        assert r["ttfo_s"] - r["ttft_s"] == pytest.approx(s.first("content") - s.first("reasoning"), abs=TOLERANCE_S)
        assert r["ttfo_s"] - r["ttft_s"] > PHASE_GAP_S - TOLERANCE_S


def test_every_kind_of_chunk_is_a_token_and_the_audit_agrees(
    run: tuple[Path, dict[str, Sent]], requests: pd.DataFrame
) -> None:
    run_dir, sent = run
    tokens = pq.read_table(run_dir / TOKENS_FILE).to_pandas()
    for rid, r in requests.iterrows():
        s = sent[rid]
        assert r["output_chunks"] == len(s.writes) == s.count("reasoning") + s.count("content") + s.count("tool")
        assert r["reasoning_chunks"] == s.count("reasoning") > 0
        assert r["output_tokens"] == s.usage["completion_tokens"] == len(s.writes) + THINK_DELIMITERS
        assert r["reasoning_tokens"] == s.usage["completion_tokens_details"]["reasoning_tokens"]
        assert not r["token_mismatch"], rid
        arrivals = tokens[tokens["request_id"] == rid].sort_values("index")["t"].to_numpy()
        written = [t for _, t in s.writes]
        assert arrivals == pytest.approx(written, abs=TOLERANCE_S), rid
    assert {sent[rid].reasoning_field for rid in requests.index} == {"reasoning_content", "reasoning"}
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    assert manifest["validity"]["token_mismatches"] == 0


def test_the_report_sets_ttfo_beside_ttft(run: tuple[Path, dict[str, Sent]], requests: pd.DataFrame) -> None:
    run_dir, sent = run
    result = build_report(run_dir, out=run_dir / "report.html")
    summary = result.summary
    assert summary["run"]["reasoning_requests"] == len(requests)
    assert summary["run"]["reasoning_only_requests"] == 0
    p = summary["percentiles"]
    thinking = pd.Series([sent[rid].first("content") - sent[rid].first("reasoning") for rid in requests.index])
    assert p["ttfo_s"]["count"] == p["ttft_s"]["count"] == len(requests)
    assert p["ttfo_s"]["p50"] - p["ttft_s"]["p50"] == pytest.approx(thinking.median(), abs=TOLERANCE_S)
    for stage in summary["stages"]:
        if stage["requests_ok"]:
            assert stage["ttfo_p50_s"] > stage["ttft_p50_s"] + PHASE_GAP_S - TOLERANCE_S
    html = result.html_path.read_text()
    assert "TTFO p50" in html and "TTFO p99" in html and "fig-ttfo-dist" in html
