"""The server against transformers: small random Llama checkpoints saved by `transformers` in both
config formats (transformers 5's `rope_parameters`, the older `rope_theta` + `rope_scaling`), tied
and untied, with a Llama-3 chat template, a BOS-adding tokenizer and a list of EOS ids. Greedy token
ids from the server equal `generate()` for completions and for chat, and chat prompts are HF's ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from satscope.server_under_test.config import ServerConfig
from satscope.server_under_test.engine import LLMEngine
from satscope.server_under_test.sampling_params import SamplingParams

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
ROPE = {
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "linear": {"rope_type": "linear", "factor": 2.0},
}
MAX_NEW = 12


def _tokenizer(path: Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = ["the quick brown fox jumps over the lazy dog, said the user to the assistant"] * 20
    tok.train_from_iterator(
        text,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    tok.save(str(path / "tokenizer.json"))
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )
    hf.chat_template = LLAMA3_TEMPLATE
    hf.save_pretrained(str(path))
    return hf


def _checkpoint(path: Path, rope: str, tied: bool, legacy: bool) -> tuple[object, object]:
    path.mkdir()
    tok = _tokenizer(path)
    eos = [tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")]
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
        initializer_range=0.2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos[0],
        rope_parameters={"rope_theta": 50000.0, **ROPE[rope]},
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(path))
    raw = json.loads((path / "config.json").read_text())
    assert "rope_parameters" in raw  # transformers 5 writes the new format
    raw["eos_token_id"] = eos[:1]  # the rest only in generation_config.json, as Llama 3.x instruct has it
    if legacy:
        params = raw.pop("rope_parameters")
        raw["rope_theta"] = params.pop("rope_theta")
        raw["rope_scaling"] = params
    (path / "config.json").write_text(json.dumps(raw))
    return model, tok


def _hf_greedy(model: object, ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize(
    ("rope", "tied", "legacy"), [("llama3", False, False), ("llama3", True, True), ("linear", False, True)]
)
def test_greedy_ids_equal_transformers_generate(tmp_path: Path, rope: str, tied: bool, legacy: bool) -> None:
    model, tok = _checkpoint(tmp_path / "ckpt", rope, tied, legacy)
    engine = LLMEngine(ServerConfig(model_path=str(tmp_path / "ckpt")))
    assert engine.model_config.stop_token_ids == {
        tok.convert_tokens_to_ids("<|eot_id|>"),
        tok.convert_tokens_to_ids("<|end_of_text|>"),
    }
    greedy = SamplingParams(max_tokens=MAX_NEW, temperature=0.0)
    for text in ("the quick brown fox", "the lazy dog said " * 6):
        ids = engine.tokenizer.encode(text)
        assert ids == tok(text).input_ids
        assert engine.generate([ids], greedy)[0].token_ids == _hf_greedy(model, ids)
    messages = [
        {"role": "system", "content": "the assistant"},
        {"role": "user", "content": " the quick fox "},
        {"role": "assistant", "content": "the dog"},
        {"role": "user", "content": "jumps over"},
    ]
    hf_ids = tok(
        tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), add_special_tokens=False
    ).input_ids
    ids = engine.tokenizer.chat_token_ids(messages)
    assert ids == hf_ids and ids.count(tok.bos_token_id) == 1
    assert engine.generate([ids], greedy)[0].token_ids == _hf_greedy(model, ids)
