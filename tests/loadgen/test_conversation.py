"""Sessions without a server: think times, the history a turn carries, the answer text of a stream."""

from __future__ import annotations

import json
import random
from array import array
from pathlib import Path

import pytest

from satscope.errors import SatscopeError
from satscope.loadgen._token_stream import StreamTally, read_stream
from satscope.loadgen.conversation import Session, ThinkTime
from satscope.loadgen.conversations_file import load_conversations
from satscope.loadgen.sse import answer_text, chunk_text, request_body
from satscope.loadgen.workload import Workload, WorkloadConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2", ThinkTime("fixed", 2.0)),
        ("0.25", ThinkTime("fixed", 0.25)),
        ("uniform:2:1", ThinkTime("uniform", 2.0, 1.0)),
        ("lognormal:1.5:0.5", ThinkTime("lognormal", 1.5, 0.5)),
    ],
)
def test_think_time_parses(text: str, expected: ThinkTime) -> None:
    assert ThinkTime.parse(text) == expected
    assert ThinkTime.from_json(expected.to_json()) == expected


@pytest.mark.parametrize("text", ["-1", "soon", "gamma:2", "uniform:2:1:3", "fixed:nan"])
def test_bad_think_time_is_one_line_with_the_fix(text: str) -> None:
    with pytest.raises(SatscopeError) as err:
        ThinkTime.parse(text)
    assert "\n" not in str(err.value)


def test_think_times_are_never_negative_and_keep_their_mean() -> None:
    rng = random.Random(3)
    values = [ThinkTime("normal", 1.0, 0.3).sample(rng) for _ in range(20000)]
    assert min(values) >= 0.0
    assert abs(sum(values) / len(values) - 1.0) < 0.02
    assert ThinkTime("normal", 0.1, 5.0).sample(rng) >= 0.0


def test_a_later_turn_carries_the_prompts_and_the_answers() -> None:
    session = Session("local-s00001", turns=3)
    assert session.messages("hi") == [{"role": "user", "content": "hi"}]
    assert session.text("hi") == "hi"
    session.answered("hi", " there", next_at=5.0)
    session.answered("and", " more", next_at=7.5)
    assert session.next_turn == 3 and session.next_at == 7.5 and not session.done
    assert session.messages("last") == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": " there"},
        {"role": "user", "content": "and"},
        {"role": "assistant", "content": " more"},
        {"role": "user", "content": "last"},
    ]
    assert session.text("last") == "hi there\nand more\nlast"
    session.answered("last", ".", next_at=9.0)
    assert session.done


def test_a_failed_turn_ends_the_session() -> None:
    session = Session("s", turns=4)
    session.answered("a", "b", next_at=1.0)
    session.failed()
    assert session.done and session.sent == 2


def test_chat_body_sends_the_history_as_messages() -> None:
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    body = request_body(chat=True, model="m", prompt="c", max_tokens=4, stream=True, ignore_eos=True, messages=history)
    assert body["messages"] == history
    plain = request_body(chat=True, model="m", prompt="c", max_tokens=4, stream=True, ignore_eos=True)
    assert plain["messages"] == [{"role": "user", "content": "c"}]


def test_workload_sessions_round_trip_and_refuse_a_dataset(tmp_path) -> None:
    cfg = WorkloadConfig(turns=4, think_time=ThinkTime("uniform", 1.0, 0.5))
    assert WorkloadConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    old = cfg.to_json()
    del old["turns"], old["think_time"]  # a run.json written before sessions
    assert WorkloadConfig.from_json(old).turns == 1
    with pytest.raises(SatscopeError, match="--turns"):
        WorkloadConfig(turns=0)
    with pytest.raises(SatscopeError, match="drop one of --turns and --dataset"):
        WorkloadConfig(turns=2, dataset=str(tmp_path / "d.json"))


def _chunk(chat: bool, text: str | None = None, reasoning: str | None = None) -> bytes:
    if chat:
        delta = {k: v for k, v in (("content", text), ("reasoning_content", reasoning)) if v is not None}
        choice = {"index": 0, "delta": delta}
    else:
        choice = {"index": 0, "text": text}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n"


class _Lines:
    def __init__(self, lines: list[bytes]) -> None:
        self._lines = iter(lines)

    def read_line(self, response: object) -> bytes:
        return next(self._lines, b"")


@pytest.mark.parametrize("chat", [True, False])
def test_the_stream_keeps_the_answer_text_only_when_asked(chat: bool) -> None:
    lines = [_chunk(chat, "Hel"), b"\n", _chunk(chat, "lo"), _chunk(chat, " you"), b"data: [DONE]\n"]
    if chat:
        lines.insert(0, _chunk(chat, None, reasoning="hmm"))  # thinking is not the answer
    kept = StreamTally(text=[])
    assert read_stream(_Lines(lines), None, chat, array("d"), kept)[0] == "ok"
    assert "".join(kept.text or []) == "Hello you"
    plain = StreamTally()
    times = array("d")
    assert read_stream(_Lines(lines), None, chat, times, plain)[0] == "ok"
    assert plain.text is None and len(times) == len(lines) - 2
    assert chunk_text(_chunk(chat, "x"), chat) == "x"


def test_a_whole_answer_is_read_from_either_endpoint() -> None:
    assert answer_text({"choices": [{"message": {"role": "assistant", "content": "yes"}}]}, chat=True) == "yes"
    assert answer_text({"choices": [{"text": " no"}]}, chat=False) == " no"
    assert answer_text({"choices": []}, chat=True) == ""
    assert answer_text("junk", chat=False) == ""


def test_messages_jsonl_gives_one_session_a_line_with_its_user_turns() -> None:
    conversations = load_conversations(EXAMPLES / "conversations.jsonl", "messages")
    assert len(conversations) == 3
    travel = conversations[0]
    assert travel.system == ("You are a terse travel agent.",)
    assert [p for p, _ in travel.turns] == [
        "I want to see glaciers in July. Where should I go?",
        "Which one is cheaper from Boston?",
        "Plan three days there.",
    ]
    assert [n for _, n in travel.turns] == [10, 6, None]  # the file's answer lengths in words; none after the last


def test_sharegpt_sessions_keep_every_human_turn() -> None:
    first, pirate = load_conversations(EXAMPLES / "sharegpt_sessions.json", "sharegpt-sessions")
    assert first.turns == (("What is the capital of Australia?", 1), ("Why not Sydney?", 17))
    assert pirate.system == ("Answer like a pirate.",) and len(pirate.turns) == 1


@pytest.mark.parametrize(
    "fmt, text, message",
    [
        ("messages", "not json\n", "is not one JSON list of messages per line"),
        ("messages", '[{"role": "assistant", "content": "only me"}]\n', "no conversation with a user turn"),
        ("sharegpt-sessions", '[{"other": 1}]', "no conversation with a user turn"),
        ("mystery", "[]", "conversation format 'mystery' unknown"),
    ],
)
def test_bad_conversation_files_are_one_line_with_the_fix(tmp_path, fmt: str, text: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(text)
    with pytest.raises(SatscopeError, match=message) as err:
        load_conversations(path, fmt)
    assert "\n" not in str(err.value)


def test_a_file_session_follows_its_script_and_opens_with_the_system_message() -> None:
    cfg = WorkloadConfig(dataset=str(EXAMPLES / "conversations.jsonl"), dataset_format="messages", seed=1)
    assert cfg.sessions and not WorkloadConfig().sessions and WorkloadConfig(turns=2).sessions
    workload = Workload(cfg)
    scripts = [workload.next_conversation() for _ in range(3)]
    assert all(s is not None for s in scripts)
    travel = next(s for s in scripts if s is not None and s[0])
    system, specs = travel
    assert [s.max_tokens for s in specs][:2] == [10, 6] and specs[2].max_tokens == cfg.output_len.mean
    session = Session("s", len(specs), system, specs)
    session.answered(specs[0].prompt, " Iceland.", next_at=0.0)
    assert session.messages(specs[1].prompt)[0] == {"role": "system", "content": "You are a terse travel agent."}
    assert session.text(specs[1].prompt).startswith("You are a terse travel agent.\nI want to see glaciers")
    assert Workload(WorkloadConfig(turns=3)).next_conversation() is None
