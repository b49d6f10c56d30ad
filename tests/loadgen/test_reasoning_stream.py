"""Reasoning and tool-call streams in-process: the parser per delta kind, the stream reader's times
and tally, the token audit, the request records and the reading of files written before them."""

from __future__ import annotations

import itertools
import json
from array import array

import msgpack
import pyarrow.parquet as pq
import pytest

from satscope.loadgen import _token_stream
from satscope.loadgen._token_stream import StreamTally, read_stream
from satscope.loadgen.records import RequestRecord, RunStore, WorkerBuffer
from satscope.loadgen.shapes import Shape, Stage
from satscope.loadgen.sse import LineKind, Usage, parse_line, usage_counts
from satscope.loadgen.token_audit import THINK_DELIMITER_TOKENS, token_mismatch
from satscope.run_format import read_requests_table, requests_schema


def _chunk(delta: object, **extra: object) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}], **extra}).encode() + b"\n"


def _call(name: str | None = None, arguments: str | None = None) -> dict:
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    return {"tool_calls": [{"index": 0, "function": function}]}


@pytest.mark.parametrize(
    "delta, reasoning, visible",
    [
        ({"reasoning_content": "hmm"}, 1, 0),  # vLLM, SGLang
        ({"reasoning": "hmm"}, 1, 0),  # OpenRouter, newer vLLM
        ({"reasoning_content": "hmm", "reasoning": "hmm"}, 1, 0),  # both names, one token
        ({"reasoning_content": "hmm", "content": None}, 1, 0),
        ({"content": "hi"}, 0, 1),
        ({"reasoning_content": "", "content": "hi"}, 0, 1),
        (_call(arguments='{"city'), 0, 1),
        (_call(name="get_weather", arguments=""), 0, 1),  # the call's first chunk: its name
        ({"reasoning_content": "so", "content": "Hi"}, 1, 1),  # the end of thinking and the answer at once
        ({"content": "Let me check.", **_call(arguments="{")}, 0, 2),
    ],
)
def test_each_kind_of_delta_is_output(delta: dict, reasoning: int, visible: int) -> None:
    event = parse_line(_chunk(delta), chat=True)
    assert (event.kind, event.reasoning_parts, event.visible_parts) == (LineKind.CONTENT, reasoning, visible)


@pytest.mark.parametrize(
    "delta",
    [
        {},
        {"role": "assistant", "content": ""},
        {"content": None, "reasoning_content": None},
        {"reasoning": ""},
        {"tool_calls": []},
        {"tool_calls": [{"index": 0, "id": "call_0", "type": "function"}]},
        _call(arguments=""),
    ],
)
def test_deltas_without_output_are_empty(delta: dict) -> None:
    assert parse_line(_chunk(delta), chat=True).kind == LineKind.EMPTY


def test_completions_count_text_only() -> None:
    line = b'data: {"choices":[{"index":0,"text":"","reasoning_content":"x"}]}\n'
    assert parse_line(line, chat=False).kind == LineKind.EMPTY
    event = parse_line(b'data: {"choices":[{"index":0,"text":" a"}]}\n', chat=False)
    assert (event.kind, event.visible_parts, event.reasoning_parts) == (LineKind.CONTENT, 1, 0)


@pytest.mark.parametrize(
    "delta, what",
    [
        ({"reasoning_content": 7}, "reasoning_content"),
        ({"reasoning": ["x"]}, "reasoning"),
        ({"tool_calls": {"index": 0}}, "tool_calls is not a list"),
        ({"tool_calls": ["x"]}, "tool call is not an object"),
        ({"tool_calls": [{"function": "f"}]}, "function is not an object"),
        ({"tool_calls": [{"function": {"arguments": 3}}]}, "arguments"),
    ],
)
def test_wrong_types_are_malformed(delta: dict, what: str) -> None:
    event = parse_line(_chunk(delta), chat=True)
    assert event.kind == LineKind.MALFORMED and what in (event.error or "")


def test_usage_with_reasoning_tokens() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 31}}
    event = parse_line(b"data: " + json.dumps({"choices": [], "usage": usage}).encode(), chat=True)
    assert (event.kind, event.output_tokens, event.reasoning_tokens) == (LineKind.EMPTY, 40, 31)
    both = parse_line(_chunk({"reasoning": "x"}, usage=usage), chat=True)
    assert (both.kind, both.reasoning_parts, both.reasoning_tokens) == (LineKind.CONTENT, 1, 31)
    assert usage_counts({"completion_tokens": 3, "completion_tokens_details": None}) == Usage(None, 3, None, None)


class _Lines:
    """A connection that hands out prepared lines, then raises ``error`` if given, else ends."""

    def __init__(self, lines: list[bytes], error: Exception | None = None) -> None:
        self._lines = iter(lines)
        self._error = error

    def read_line(self, response: object) -> bytes:
        line = next(self._lines, None)
        if line is None:
            if self._error is not None:
                raise self._error
            return b""
        return line


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each line read arrives one second after the one before (1.0, 2.0, ...)."""
    ticks = itertools.count(1.0)
    monkeypatch.setattr(_token_stream.time, "perf_counter", lambda: next(ticks))


def test_the_reader_times_each_kind_and_counts_reasoning(clock: None) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 4}}
    lines = [
        _chunk({"role": "assistant", "content": ""}),  # t=1: no token
        _chunk({"reasoning_content": "a"}),  # t=2
        b"\n",  # t=3: the blank line between events
        _chunk({"reasoning": "b"}),  # t=4
        _chunk({"reasoning_content": "c", "content": "D"}),  # t=5: two tokens
        _chunk({"content": "e"}),  # t=6
        _chunk(_call(name="f", arguments="")),  # t=7
        _chunk(_call(arguments="{}")),  # t=8
        _chunk({}),  # t=9: the finish chunk
        b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n",  # t=10
        b"data: [DONE]\n",  # t=11
    ]
    times, tally = array("d"), StreamTally()
    assert read_stream(_Lines(lines), None, True, times, tally) == ("ok", None, False)
    assert list(times) == [2.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0]
    assert (tally.first_reasoning, tally.first_visible, tally.reasoning_chunks) == (2.0, 5.0, 3)
    assert tally.usage == Usage(3, 9, None, 4)


def test_a_stream_cut_while_thinking_keeps_what_it_read(clock: None) -> None:
    times, tally = array("d"), StreamTally()
    lines = [_chunk({"reasoning": "a"}), _chunk({"reasoning": "b"})]
    with pytest.raises(TimeoutError):
        read_stream(_Lines(lines, TimeoutError("read timed out")), None, True, times, tally)
    assert list(times) == [1.0, 2.0]
    assert (tally.first_reasoning, tally.first_visible, tally.reasoning_chunks) == (1.0, None, 2)


@pytest.mark.parametrize(
    "usage, chunks, reasoning_chunks, reasoning_tokens, mismatch",
    [
        (10, 10, 0, None, False),  # no reasoning: equal
        (10, 9, 0, None, True),
        (12, 10, 4, None, False),  # <think> and </think> sent as no chunk
        (11, 10, 4, 5, False),
        (10 + THINK_DELIMITER_TOKENS + 1, 10, 4, None, True),  # more missing than the delimiters
        (9, 10, 4, None, True),  # the client counted more than the server generated
        (30, 10, 0, 20, False),  # hidden reasoning: only its visible part streamed
        (30, 10, 0, 19, True),
        (None, 10, 4, None, False),  # no usage: nothing to audit
    ],
)
def test_the_token_audit(
    usage: int | None, chunks: int, reasoning_chunks: int, reasoning_tokens: int | None, mismatch: bool
) -> None:
    def audit(streamed: bool) -> list[bool]:
        reported = [-1 if usage is None else usage], [-1 if reasoning_tokens is None else reasoning_tokens]
        return token_mismatch([streamed], reported[0], [chunks], [reasoning_chunks], reported[1]).tolist()

    assert audit(streamed=True) == [mismatch]
    assert audit(streamed=False) == [False]  # a whole response has no chunks to audit


SHAPE = Shape([Stage("hold", 10, 2)])


def _record(rid: str, start: float, first: float | None, first_visible: float | None, reasoning: int) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        worker="w0",
        endpoint="chat",
        stream=True,
        intended_start=start - 0.5,
        start=start,
        first_token=first,
        end=start + 3.0,
        status="ok",
        http_status=200,
        error=None,
        prompt_tokens=5,
        output_tokens=10 + (2 if reasoning else 0),
        output_chunks=10,
        input_tokens_requested=5,
        max_tokens=10,
        prompt_tokens_cached=None,
        retried=False,
        first_reasoning_token=first if reasoning else None,
        first_visible_token=first_visible,
        reasoning_chunks=reasoning,
        reasoning_tokens=reasoning + 2 if reasoning else None,
    )


def _tables(offset_s: float = 0.0) -> dict[str, list]:
    buf = WorkerBuffer()
    buf.add(_record("w0-1", 101.0, 101.2, 102.0, 4), array("d", [101.2] * 10))
    buf.add(_record("w0-2", 102.0, 102.1, 102.1, 0), array("d", [102.1] * 10))
    buf.add(_record("w0-3", 103.0, 103.2, None, 10), array("d", [103.2] * 10))  # all thinking, no answer
    store = RunStore()
    store.extend("w0", msgpack.unpackb(msgpack.packb(buf.drain(clock_offset_s=offset_s, final=True))))
    requests, _, _ = store.tables(SHAPE, shape_origin_s=100.0)
    assert requests.schema.equals(requests_schema())
    return requests.to_pydict()


def test_records_carry_the_reasoning_columns() -> None:
    r = _tables()
    assert r["ttft_s"] == pytest.approx([0.2, 0.1, 0.2])
    assert r["ttfo_s"][:2] == pytest.approx([1.0, 0.1]) and r["ttfo_s"][2] is None
    assert r["ttfo_intended_s"][:2] == pytest.approx([1.5, 0.6]) and r["ttfo_intended_s"][2] is None
    assert r["first_reasoning_token"] == [101.2, None, 103.2]
    assert r["reasoning_chunks"] == [4, 0, 10] and r["reasoning_tokens"] == [6, None, 12]
    assert r["token_mismatch"] == [False, False, False]


def test_worker_clock_offsets_move_the_reasoning_times_too() -> None:
    plain, shifted = _tables(), _tables(offset_s=7.0)
    for col in ("first_token", "first_reasoning_token", "first_visible_token"):
        assert [None if v is None else v + 7.0 for v in plain[col]] == pytest.approx(shifted[col], abs=1e-9)
    assert shifted["ttfo_s"][:2] == pytest.approx(plain["ttfo_s"][:2])


def test_a_file_from_before_reasoning_reads_with_its_first_token_as_the_first_visible_one(tmp_path) -> None:
    buf = WorkerBuffer()
    buf.add(_record("w0-1", 101.0, 101.2, 101.2, 0), array("d", [101.2] * 10))
    buf.add(_record("w0-2", 102.0, None, None, 0), array("d"))
    store = RunStore()
    store.extend("w0", buf.drain(final=True))
    table, _, _ = store.tables(SHAPE, shape_origin_s=100.0)
    new = ("first_reasoning_token", "first_visible_token", "reasoning_tokens", "reasoning_chunks", "ttfo_s")
    old = table.drop_columns([*new, "ttfo_intended_s"])
    pq.write_table(old, tmp_path / "requests.parquet")
    back = read_requests_table(tmp_path / "requests.parquet")
    assert back.schema.equals(requests_schema())
    r = back.to_pydict()
    assert r["first_visible_token"] == r["first_token"] == [101.2, None]
    assert r["ttfo_s"] == r["ttft_s"] and r["ttfo_intended_s"] == r["ttft_intended_s"]
    assert r["reasoning_chunks"] == [0, 0] and r["reasoning_tokens"] == r["first_reasoning_token"] == [None, None]
