"""Workloads (lengths, prefixes, ShareGPT, seeds) and SSE line parsing, in-process."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from satscope.errors import SatscopeError
from satscope.loadgen.sse import LineKind, parse_line, request_body
from satscope.loadgen.workload import LengthDist, Workload, WorkloadConfig, load_sharegpt


@pytest.mark.parametrize("text, mean, sd", [("64", 64, 0), ("uniform:100:50", 100, 28.9), ("normal:200:20", 200, 20)])
def test_length_distributions(text: str, mean: float, sd: float) -> None:
    dist = LengthDist.parse(text)
    rng = random.Random(3)
    xs = [dist.sample(rng) for _ in range(4000)]
    assert statistics.mean(xs) == pytest.approx(mean, rel=0.03)
    assert statistics.pstdev(xs) == pytest.approx(sd, abs=1.5)


def test_lognormal_median_and_bounds() -> None:
    dist = LengthDist("lognormal", 100, 1.0, minimum=5, maximum=400)
    xs = [dist.sample(random.Random(i)) for i in range(3000)]
    assert statistics.median(xs) == pytest.approx(100, rel=0.1) and min(xs) >= 5 and max(xs) == 400


@pytest.mark.parametrize("text", ["abc", "normal:x", "gauss:10:1", "0"])
def test_bad_lengths(text: str) -> None:
    with pytest.raises(SatscopeError):
        LengthDist.parse(text)


def test_same_seed_same_requests_and_prefix_groups() -> None:
    cfg = WorkloadConfig(input_len=LengthDist("fixed", 40), prefix_groups=3, prefix_tokens=30, seed=7)
    a = [Workload(cfg).next_request() for _ in range(1)] + [
        r for w in [Workload(cfg)] for r in (w.next_request(), w.next_request())
    ]
    b = Workload(cfg)
    assert a[1] == b.next_request() and a[2] == b.next_request()
    reqs = [Workload(cfg, stream_id=i).next_request() for i in range(30)]
    prefixes = {" ".join(r.prompt.split()[:30]) for r in reqs}
    assert len(prefixes) == 3  # every process shares the same groups
    assert all(len(r.prompt.split()) == 40 and r.input_tokens == 40 for r in reqs)


def test_sharegpt_json_and_jsonl(tmp_path) -> None:
    conv = {"conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "a b c d"}]}
    (tmp_path / "d.json").write_text(json.dumps([conv, {"conversations": [{"from": "gpt", "value": "x"}]}]))
    (tmp_path / "d.jsonl").write_text(json.dumps(conv) + "\n")
    assert load_sharegpt(tmp_path / "d.json") == [("hello there", 4)]
    assert load_sharegpt(tmp_path / "d.jsonl") == [("hello there", 4)]
    w = Workload(WorkloadConfig(dataset=str(tmp_path / "d.json")))
    assert w.next_request().prompt == "hello there" and w.next_request().max_tokens == 4


def test_unreadable_datasets(tmp_path) -> None:
    with pytest.raises(SatscopeError, match="cannot read dataset"):
        load_sharegpt(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(SatscopeError, match="not JSON"):
        load_sharegpt(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "line, chat, kind",
    [
        (b'data: {"choices":[{"index":0,"text":" hi"}]}\n', False, LineKind.CONTENT),
        (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n', True, LineKind.EMPTY),
        (b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}', True, LineKind.CONTENT),
        (b"data: [DONE]\n", False, LineKind.DONE),
        (b"\n", False, LineKind.SKIP),
        (b": keep-alive\n", False, LineKind.SKIP),
        (b"event: message\n", False, LineKind.SKIP),
        (b"data: {oops\n", False, LineKind.MALFORMED),
        (b"garbage\n", False, LineKind.MALFORMED),
        (b'data: {"object":"x"}\n', False, LineKind.MALFORMED),
        (b'data: {"error":{"message":"overloaded"}}\n', False, LineKind.ERROR),
    ],
)
def test_sse_lines(line: bytes, chat: bool, kind: str) -> None:
    assert parse_line(line, chat).kind == kind


def test_usage_chunk_is_not_a_token_but_carries_counts() -> None:
    ev = parse_line(b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}\n', chat=False)
    assert (ev.kind, ev.prompt_tokens, ev.output_tokens) == (LineKind.EMPTY, 5, 9)


def test_request_body_asks_for_usage() -> None:
    body = request_body(chat=True, model="m", prompt="p", max_tokens=3, stream=True, ignore_eos=True)
    assert body["stream_options"] == {"include_usage": True} and body["messages"][0]["content"] == "p"
    assert "stream_options" not in request_body(
        chat=False, model="m", prompt="p", max_tokens=None, stream=False, ignore_eos=False
    )
