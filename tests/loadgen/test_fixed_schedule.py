"""`--fixed-schedule`: any dataset whose lines carry a `timestamp` is replayed at those times, requests
(sharegpt, bare prompts) or sessions (messages) alike; the file, the schedule a process takes, the
flags, and a real replay of the example sessions over two workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from satscope.errors import SatscopeError
from satscope.loadgen.schedule_file import load_schedule
from satscope.loadgen.trace import replay_envelope
from satscope.loadgen.workload import LengthDist, Workload, WorkloadConfig
from tests.loadgen.conftest import fake_server, run_satscope

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROMPTS = EXAMPLES / "fixed_schedule_prompts.jsonl"
MESSAGES = EXAMPLES / "fixed_schedule_messages.jsonl"


def _stamps(path: Path) -> list[float]:
    return [json.loads(line)["timestamp"] for line in path.read_text().splitlines() if line.strip()]


def test_the_example_files_read_in_time_order() -> None:
    prompts = load_schedule(PROMPTS, "sharegpt")
    assert [x.at_s for x in prompts] == [t / 1000 for t in sorted(_stamps(PROMPTS))]
    assert prompts[0].request == ("Summarise the plot of Hamlet in two sentences.", 48)
    assert prompts[2].request is not None and prompts[2].request[0] == "What is a KV cache?"
    assert prompts[2].request[1] == 19  # a ShareGPT line: the reply's word count
    sessions = load_schedule(MESSAGES, "messages")
    assert [len(x.conversation.turns) for x in sessions if x.conversation] == [2, 1, 2, 1]
    assert sessions[0].conversation is not None and sessions[0].conversation.system == ("You are terse.",)
    rate, duration = replay_envelope(MESSAGES, speedup=3.0, fmt="messages")
    assert duration == pytest.approx(1.5 / 3 + 1.0) and float(rate) == pytest.approx(4 / 1.5, rel=1e-5)


@pytest.mark.parametrize(
    "line, fmt, message",
    [
        ('{"prompt": "hi"}', "sharegpt", "line 1 has no timestamp"),
        ('{"timestamp": -5, "prompt": "hi"}', "sharegpt", "timestamp -5 must be >= 0 ms"),
        ('{"timestamp": 5, "prompt": ""}', "sharegpt", "line 1 has nothing to send"),
        ('{"timestamp": 5, "prompt": "hi", "max_tokens": 0}', "sharegpt", "line 1 has nothing to send"),
        ('[{"role": "user", "content": "hi"}]', "messages", "line 1 has no timestamp"),
        ('{"timestamp": 5, "messages": [{"role": "assistant", "content": "hi"}]}', "messages", "nothing to send"),
        ("", "messages", "has no lines"),
        ('{"timestamp": 0, "input_length": 3}', "mooncake", "a mooncake trace keeps its schedule"),
    ],
)
def test_bad_lines_are_one_line_errors_naming_the_line(tmp_path: Path, line: str, fmt: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SatscopeError, match=message) as err:
        load_schedule(path, fmt)
    assert "\n" not in str(err.value)


def test_each_process_takes_every_nth_line_at_its_own_time() -> None:
    cfg = WorkloadConfig(dataset=str(PROMPTS), fixed_schedule=True, speedup=2.0, output_len=LengthDist("fixed", 7))
    assert cfg.trace and not cfg.sessions
    schedule = Workload(cfg).trace_requests()
    assert schedule is not None
    times, specs = zip(*schedule, strict=True)
    assert list(times) == [t / 2000 for t in sorted(_stamps(PROMPTS))]
    assert [s.max_tokens for s in specs] == [48, 24, 19, 64, 8, 96]
    second = Workload(cfg).trace_requests("w1", 2)
    assert second is not None and [t for t, _ in second] == list(times[1::2])
    with pytest.raises(SatscopeError, match="no place among the replay's 2 processes"):
        Workload(cfg).trace_requests("w5", 2)
    # sessions: the dispatcher starts one at each line's time; the conversations come in the same order
    sessions = Workload(WorkloadConfig(dataset=str(MESSAGES), dataset_format="messages", fixed_schedule=True))
    part = sessions.trace_requests("w0", 2)
    assert part is not None and [(t, spec) for t, spec in part] == [(0.0, None), (0.45, None)]
    first, second_session = sessions.next_conversation(), sessions.next_conversation()
    assert first is not None and first[1][0].prompt == "Name a prime above 100."
    assert second_session is not None and second_session[1][0].prompt == "Give me a word that rhymes with cache."
    with pytest.raises(SatscopeError, match="--fixed-schedule replays a --dataset"):
        WorkloadConfig(fixed_schedule=True)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--fixed-schedule"], "--fixed-schedule replays a --dataset whose lines carry a timestamp"),
        (["--fixed-schedule", "--dataset", str(PROMPTS), "--rate", "3"], "--rate is ignored by a trace replay"),
        (["--fixed-schedule", "--dataset", str(PROMPTS), "--trace-block-tokens", "8"], "is for a mooncake trace"),
        (["--fixed-schedule", "--dataset", str(MESSAGES)], "line 1 has nothing to send"),  # read as sharegpt
        (["--dataset", str(PROMPTS), "--speedup", "2"], "(or --fixed-schedule)"),
    ],
)
def test_flags_are_checked_before_any_load(tmp_path: Path, flags: list[str], message: str) -> None:
    res = run_satscope("--target", "http://127.0.0.1:9", *flags, "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "x").exists()


def _sessions_file(path: Path) -> Path:
    """A 2-turn session, a 1-turn one, then two 2-turn ones: over two processes each one's part ends
    with a 2-turn session, whose second turn is still sent (the replay runs on to its end)."""
    user = {"role": "user", "content": "count the primes below one hundred"}
    answer = {"role": "assistant", "content": "there are twenty five of them"}
    again = {"role": "user", "content": "and below two hundred"}
    lines = [(0, [user, answer, again]), (100, [user]), (600, [user, answer, again]), (700, [user, answer, again])]
    path.write_text("".join(json.dumps({"timestamp": t, "messages": m}) + "\n" for t, m in lines))
    return path


@pytest.mark.slow
def test_sessions_start_at_their_timestamps_over_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "replay"
    dataset = _sessions_file(tmp_path / "sessions.jsonl")
    with fake_server(ttft=0.01, itl=0.002) as server:
        res = run_satscope("--target", server.url, "--dataset", str(dataset), "--dataset-format", "messages",
                           "--fixed-schedule", "--speedup", "2", "--workers", "2", "--out", str(out),
                           timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    req = pq.read_table(out / "requests.parquet").to_pandas()
    assert (req.status == "ok").all() and len(req) == 7, req[["session_id", "turn", "status"]]
    firsts = req[req.turn == 1].sort_values("intended_start")
    assert len(firsts) == 4 and set(firsts.worker) == {"w0", "w1"}
    stamps = np.array(sorted(_stamps(dataset))) / 1000 / 2
    for k, worker in enumerate(("w0", "w1")):  # each process: the lines k, k + 2 at the file's times
        mine = firsts[firsts.worker == worker].intended_start.to_numpy()
        assert np.allclose(mine - mine[0], stamps[k::2] - stamps[k], atol=1e-6), (worker, mine)
    # a session's second turn carries the first turn and its answer
    for _, turns in req.groupby("session_id"):
        turns = turns.sort_values("turn")
        assert (np.diff(turns.prompt_tokens.to_numpy()) > 0).all()
    assert sorted(req.groupby("session_id").size()) == [1, 2, 2, 2]
    from satscope.reports import analyze

    replay = analyze(out)["replay"]
    assert replay is not None and replay["requests"] == 7 and replay["speedup"] == 2.0
