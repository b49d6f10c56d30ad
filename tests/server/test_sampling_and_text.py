"""Sampler (greedy, temperature, top-p, seeds, ignore_eos), tokenizer and streamed text with stop strings."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test.config import PRESETS
from satscope.server_under_test.detokenizer import StreamingText
from satscope.server_under_test.sampler import Sampler
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.tokenizer import ByteTokenizer

EOS = 257


def test_greedy_takes_the_argmax_and_ignore_eos_masks_eos() -> None:
    logits = torch.zeros(2, 258)
    logits[:, EOS] = 10.0
    logits[:, 65] = 5.0
    sampler = Sampler(seed=0, eos_token_id=EOS)
    greedy = SamplingParams(temperature=0.0)
    assert sampler.sample(logits, ["a", "b"], [greedy, SamplingParams(temperature=0.0, ignore_eos=True)]) == [EOS, 65]


def test_banned_ids_are_never_sampled() -> None:
    sampler = Sampler(seed=0, eos_token_id=EOS, banned_token_ids=list(range(0, 200)))
    logits = torch.zeros(64, 258)
    tokens = sampler.sample(logits, [str(i) for i in range(64)], [SamplingParams(temperature=1.0)] * 64)
    assert all(t >= 200 for t in tokens)


def test_top_p_keeps_only_the_nucleus() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(400, 4).contiguous()
    sampler = Sampler(seed=1, eos_token_id=3)
    drawn = sampler.sample(logits, [str(i) for i in range(400)], [SamplingParams(temperature=1.0, top_p=0.75)] * 400)
    assert set(drawn) == {0, 1}  # 0.5 + 0.3 reaches 0.75; 2 and 3 are cut
    tiny_p = sampler.sample(logits[:50], [str(i) for i in range(50)], [SamplingParams(top_p=1e-9)] * 50)
    assert set(tiny_p) == {0}


def test_seeded_requests_do_not_depend_on_the_batch() -> None:
    logits = torch.randn(3, 258, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0, seed=42)
    alone = [Sampler(0, EOS).sample(logits[1:2], ["r"], [params]) for _ in range(2)]
    s = Sampler(7, EOS)
    batched = s.sample(logits, ["x", "r", "y"], [SamplingParams(), params, SamplingParams()])
    assert alone[0] == alone[1] == [batched[1]]


def test_a_vanishing_temperature_is_greedy() -> None:
    logits = torch.randn(4, 258, generator=torch.Generator().manual_seed(3))
    tokens = Sampler(0, EOS).sample(logits.clone(), list("abcd"), [SamplingParams(temperature=1e-9, seed=1)] * 4)
    assert tokens == logits.argmax(-1).tolist()


@pytest.mark.parametrize(
    "bad", [{"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"stop": ("",)}, {"seed": 2**64}]
)
def test_sampling_params_are_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**bad)


def test_byte_tokenizer_round_trip_and_incremental_utf8() -> None:
    tok = ByteTokenizer(PRESETS["tiny"])
    text = "héllo ✓"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    dec = tok.incremental_decoder()
    pieces = [dec.decode(i) for i in ids]
    assert "".join(pieces) == text
    assert pieces[-3:] == ["", "", "✓"]  # a 3-byte character appears once complete
    assert tok.decode([72, EOS]) == "H"
    assert 256 in tok.banned_token_ids() and EOS not in tok.banned_token_ids()


def _feed(text_ids: list[int], stop: tuple[str, ...]) -> tuple[list[str], bool, StreamingText]:
    st = StreamingText(ByteTokenizer(PRESETS["tiny"]).incremental_decoder(), stop)
    pieces, stopped = [], False
    for t in text_ids:
        piece, stopped = st.add(t)
        pieces.append(piece)
        if stopped:
            break
    return pieces, stopped, st


def test_stop_string_across_tokens_is_never_emitted() -> None:
    pieces, stopped, _ = _feed(list(b"abcSTOPdef"), ("STOP",))
    assert stopped and "".join(pieces) == "abc"
    assert not any("S" in p for p in pieces)


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    pieces, stopped, st = _feed(list(b"abSTxy"), ("STOP",))
    assert not stopped
    assert "".join(pieces) + st.finish() == "abSTxy"
    assert pieces[2] == ""  # "S" could have started "STOP"


def test_earliest_of_several_stop_strings_wins() -> None:
    pieces, stopped, _ = _feed(list(b"hello world"), ("world", "lo"))
    assert stopped and "".join(pieces) == "hel"


def test_an_incomplete_character_is_flushed_at_the_end_but_never_after_a_stop() -> None:
    ids = [*b"ok", 0xE2, 0x9C]  # "ok" then the first two bytes of a three-byte character
    pieces, stopped, st = _feed(ids, ())
    assert not stopped and "".join(pieces) == "ok"
    assert st.finish() == "\ufffd"  # the broken tail is shown, as a full decode would show it
    pieces, stopped, st = _feed([*b"ab", 0xE2, *b"XY"], ("XY",))
    assert stopped and "".join(pieces) + st.finish() == "ab\ufffd"
