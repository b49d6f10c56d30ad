"""Multi-turn sessions end to end: `satscope run --turns` against the bundled server and the fake one.

The history must really grow: turn k's prompt (the server's own count) exceeds turn k−1's by at
least the answer the server gave to turn k−1, on chat (``messages``) and on completions (the
concatenated text). A later turn's intended start is the previous answer's end plus the think
time, in the closed and in the open loop, and the summary's TTFT by turn is the quantiles of
the records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satscope.run_format import read_requests_table
from tests.loadgen.conftest import fake_server, run_satscope

THINK_S = 0.3


def _sessions(run_dir: Path) -> pd.DataFrame:
    req = read_requests_table(run_dir / "requests.parquet").to_pandas()
    assert req["session_id"].notna().all() and req["turn"].notna().all()
    return req.sort_values(["session_id", "turn"]).reset_index(drop=True)


def _later_turns(req: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(turn k, turn k−1) row pairs of the same session, both ok."""
    prev = req.groupby("session_id").shift(1)
    later = req["turn"] > 1
    assert (req.loc[later, "turn"] == prev.loc[later, "turn"] + 1).all()  # no turn skipped
    both = later & (req["status"] == "ok") & (prev["status"] == "ok")
    return req[both], prev[both]


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_history_grows_by_the_answers_on_the_bundled_server(tmp_path: Path, endpoint: str) -> None:
    out = tmp_path / endpoint
    res = run_satscope(
        "--serve", "--serve-arg=--preset=tiny", "--endpoint", endpoint, "--users", "2", "--duration", "4",
        "--turns", "3", "--think-time", str(THINK_S), "--input-len", "16", "--output-len", "8",
        "--seed", "5", "--out", str(out), timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    req = _sessions(out)
    assert set(req["turn"]) == {1, 2, 3} and (req["status"] == "ok").all()
    turn, prev = _later_turns(req)
    assert len(turn) >= 4
    # the server counted the earlier prompt, its answer and the new prompt
    growth = turn["prompt_tokens"].to_numpy() - prev["prompt_tokens"].to_numpy()
    assert (growth >= prev["output_tokens"].to_numpy() + 1).all(), growth
    # closed loop: turn k is due THINK_S after turn k−1's answer ended, and sent then
    assert np.allclose(turn["intended_start"].to_numpy(), prev["end"].to_numpy() + THINK_S, atol=1e-9)
    assert (turn["start"] >= turn["intended_start"]).all()
    assert (turn["start"] - turn["intended_start"]).max() < 0.1
    first = req[req["turn"] == 1]
    assert (first["intended_start"] == first["start"]).all()


@pytest.mark.slow
def test_open_loop_sessions_schedule_later_turns_after_the_answer(tmp_path: Path) -> None:
    out = tmp_path / "open"
    with fake_server(ttft=0.02, itl=0.005) as server:
        res = run_satscope(
            "--target", server.url, "--rate", "4", "--arrival", "constant", "--duration", "3", "--turns", "3",
            "--think-time", "uniform:0.2:0.1", "--input-len", "16", "--output-len", "6", "--seed", "9",
            "--out", str(out),
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    req = _sessions(out)
    first = req[req["turn"] == 1].sort_values("intended_start")
    assert len(first) >= 10
    assert np.allclose(np.diff(first["intended_start"].to_numpy()), 0.25, atol=1e-6)  # the arrival schedule
    turn, prev = _later_turns(req)
    assert len(turn) >= 10
    think = turn["intended_start"].to_numpy() - prev["end"].to_numpy()
    assert think.min() >= 0.1 - 1e-9 and think.max() <= 0.3 + 1e-9 and think.std() > 0.01  # drawn, not fixed
    growth = turn["prompt_tokens"].to_numpy() - prev["prompt_tokens"].to_numpy()
    assert (growth >= prev["output_tokens"].to_numpy()).all()  # the fake server counts words: " tok" each
    # no later turn starts once the arrival schedule is over
    run = json.loads((out / "run.json").read_text())
    shape_end = run["stages"][-1]["end_s"]
    assert (turn["intended_start"] <= shape_end + 0.5).all()


@pytest.mark.slow
def test_summary_gives_ttft_by_turn_from_the_records(tmp_path: Path) -> None:
    out = tmp_path / "summary"
    with fake_server(ttft=0.02, itl=0.005) as server:
        res = run_satscope(
            "--target", server.url, "--users", "3", "--duration", "3", "--turns", "4", "--think-time", "0.05",
            "--input-len", "16", "--output-len", "4", "--out", str(out),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    from satscope.reports import analyze

    sessions = analyze(out)["sessions"]
    req = _sessions(out)
    ok = req[req["status"] == "ok"]
    assert sessions["turns_per_session"] == 4
    assert sessions["sessions"] == req["session_id"].nunique()
    per_session = ok.groupby("session_id").size().reindex(req["session_id"].unique(), fill_value=0)
    assert sessions["mean_turns_completed"] == pytest.approx(per_session.mean())
    assert sessions["sessions_complete"] == int((per_session == 4).sum()) >= 3
    assert [t["turn"] for t in sessions["per_turn"]] == [1, 2, 3, 4]
    for row in sessions["per_turn"]:
        ttft = ok.loc[ok["turn"] == row["turn"], "ttft_s"].to_numpy()
        assert row["requests_ok"] == len(ttft) == row["ttft_s"]["count"]
        assert row["ttft_s"]["p50"] == pytest.approx(np.quantile(ttft, 0.5), abs=1e-12)
        assert row["ttft_s"]["p99"] == pytest.approx(np.quantile(ttft, 0.99), abs=1e-12)
    means = [t["prompt_tokens_mean"] for t in sessions["per_turn"]]
    assert means == sorted(means) and means[-1] > means[0] + 3 * 4  # three answers of 4 tokens at least
    complete = req.groupby("session_id").filter(lambda g: (g["status"] == "ok").sum() == 4)
    spans = complete.groupby("session_id").apply(lambda g: g["end"].max() - g["intended_start"].min())
    assert sessions["session_duration_s"]["p50"] == pytest.approx(np.quantile(spans, 0.5), abs=1e-9)


def test_a_run_without_sessions_has_null_sessions(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    with fake_server(ttft=0.01, itl=0.005) as server:
        res = run_satscope("--target", server.url, "--users", "1", "--duration", "1", "--output-len", "3",
                           "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    from satscope.reports import analyze

    assert analyze(out)["sessions"] is None
    req = read_requests_table(out / "requests.parquet")
    assert req.column("session_id").null_count == req.num_rows == req.column("turn").null_count


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--think-time", "2"], "--think-time is the pause between the turns of a session"),
        (["--turns", "0"], "a session has at least one turn"),
        (["--turns", "3", "--think-time", "soon"], "cannot read think time"),
        (["--turns", "2", "--dataset", "DATASET"], "drop one of --turns and --dataset"),
        (["--dataset-format", "messages"], "--dataset-format says what --dataset FILE holds"),
        (["--dataset", "DATASET", "--dataset-format", "csv"], "--dataset-format 'csv' unknown"),
        (["--dataset", "DATASET", "--dataset-format", "messages"], "no conversation with a user turn"),
    ],
)
def test_bad_session_flags_are_refused_before_any_load(tmp_path: Path, flags: list[str], message: str) -> None:
    dataset = tmp_path / "sharegpt.json"
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    dataset.write_text(json.dumps([{"conversations": turns}]))
    flags = [str(dataset) if f == "DATASET" else f for f in flags]
    res = run_satscope("--target", "http://127.0.0.1:9", "--users", "1", *flags, "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_messages_file_sends_its_user_turns_with_the_servers_answers(tmp_path: Path) -> None:
    out = tmp_path / "messages"
    with fake_server(ttft=0.01, itl=0.002, args=("--record-requests",)) as server:
        res = run_satscope(
            "--target", server.url, "--endpoint", "chat", "--users", "2", "--duration", "2",
            "--dataset", "examples/conversations.jsonl", "--dataset-format", "messages", "--think-time", "0.05",
            "--output-len", "3", "--out", str(out),
        )  # fmt: skip
        seen = server.records()["seen"]
    assert res.returncode == 0, res.stderr
    req = _sessions(out)
    bodies = {s["headers"]["x-request-id"]: s["body"] for s in seen if "x-request-id" in s["headers"]}
    file_turns = {
        "I want to see glaciers in July. Where should I go?": (1, 10),
        "Which one is cheaper from Boston?": (2, 6),
        "Plan three days there.": (3, 3),  # no answer in the file: --output-len
        "Explain what a KV cache is in one paragraph.": (1, 21),
        "Why does it limit how many requests a server can run at once?": (2, 3),
        "Write a haiku about load testing.": (1, 3),
    }
    for row in req[req["status"] == "ok"].itertuples():
        messages = bodies[row.request_id]["messages"]
        assert messages[-1]["role"] == "user"
        assert file_turns[messages[-1]["content"]] == (row.turn, row.max_tokens)
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        # the history holds what the server answered (" tok" per token), never the file's answers
        assert len(answers) == row.turn - 1 and all(a == " tok" * len(a.split()) and a for a in answers)
    sessions = req.groupby("session_id")["turn"].max()
    assert set(sessions) <= {1, 2, 3} and len(sessions) >= 6
    assert req.groupby("session_id")["turn"].apply(lambda t: list(t) == list(range(1, len(t) + 1))).all()


@pytest.mark.slow
def test_non_streamed_turns_carry_the_answers_too(tmp_path: Path) -> None:
    out = tmp_path / "no-stream"
    with fake_server(ttft=0.01, itl=0.002) as server:
        res = run_satscope(
            "--target", server.url, "--users", "2", "--duration", "2", "--turns", "3", "--no-stream",
            "--input-len", "16", "--output-len", "5", "--out", str(out),
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    turn, prev = _later_turns(_sessions(out))
    assert len(turn) >= 4
    # the fake server counts words: the earlier prompt, its 5-word answer, then a new prompt of 16 words
    growth = turn["prompt_tokens"].to_numpy() - prev["prompt_tokens"].to_numpy()
    assert (growth == prev["output_tokens"].to_numpy() + turn["input_tokens_requested"].to_numpy()).all(), growth
