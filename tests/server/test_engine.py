"""LLMEngine end to end on the calling thread: finishing rules, aborts, and a local HF checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from satscope.server_under_test.config import ConfigError, ServerConfig
from satscope.server_under_test.engine import LLMEngine, PromptTooLongError, QueueFullError
from satscope.server_under_test.reference import dense_forward
from satscope.server_under_test.sampling_params import SamplingParams
from satscope.server_under_test.weights import build_model


@pytest.fixture(scope="module")
def engine() -> LLMEngine:
    return LLMEngine(ServerConfig(max_model_len=256))


def test_ignore_eos_runs_to_max_tokens_without_eos(engine: LLMEngine) -> None:
    prompts = [engine.tokenizer.encode(f"prompt {i}") for i in range(8)]
    outs = engine.generate(prompts, SamplingParams(max_tokens=120, temperature=1.0, ignore_eos=True, seed=3))
    for out in outs:
        assert out.finish_reason == "length" and out.completion_tokens == 120
        assert engine.model_config.eos_token_id not in out.token_ids
        assert all(32 <= t < 127 or t == 10 for t in out.token_ids)
        assert len(out.text) == 120


def test_eos_finishes_with_stop_when_not_ignored(engine: LLMEngine) -> None:
    # Sampling at a high temperature, EOS (1 of ~97 allowed ids) turns up within a few hundred tokens.
    prompts = [engine.tokenizer.encode(f"eos {i}") for i in range(16)]
    outs = engine.generate(prompts, SamplingParams(max_tokens=200, temperature=2.0, seed=1))
    stopped = [o for o in outs if o.finish_reason == "stop"]
    assert stopped
    for o in stopped:
        assert o.token_ids[-1] == engine.model_config.eos_token_id
        assert len(o.text) == o.completion_tokens - 1  # EOS is not text


def test_context_and_pool_limits_are_checked_up_front(engine: LLMEngine) -> None:
    with pytest.raises(PromptTooLongError, match="more than the context of 256"):
        engine.add_request("r", [65] * 200, SamplingParams(max_tokens=100))
    with pytest.raises(PromptTooLongError, match="empty"):
        engine.add_request("r", [], SamplingParams())
    small = LLMEngine(ServerConfig(kv_blocks=2, max_waiting=1, max_model_len=256))
    with pytest.raises(PromptTooLongError, match="needs 3 KV blocks, the pool has 2"):
        small.add_request("r", [65] * 30, SamplingParams(max_tokens=9))
    small.add_request("a", [65], SamplingParams())
    with pytest.raises(QueueFullError):
        small.add_request("b", [65], SamplingParams())


def test_abort_frees_blocks_and_reports_abort(engine: LLMEngine) -> None:
    seen = []
    engine.add_request("victim", [65] * 50, SamplingParams(max_tokens=100, ignore_eos=True), seen.append)
    for _ in range(3):
        engine.step()
    assert engine.block_manager.num_used_blocks > 0
    engine.abort("victim")
    engine.step()
    assert engine.block_manager.num_used_blocks == 0 and not engine.has_unfinished
    assert seen[-1].finished and seen[-1].finish_reason == "abort"
    assert len(seen) == 4  # a token per step, then the abort


def test_engine_thread_serves_and_stops(engine: LLMEngine) -> None:
    import threading

    done = threading.Event()
    outs = []

    def sink(out) -> None:
        outs.append(out)
        if out.finished:
            done.set()

    local = LLMEngine(ServerConfig(max_model_len=256))
    local.start()
    local.add_request("t", [72, 105], SamplingParams(max_tokens=5, ignore_eos=True), sink)
    assert done.wait(30)
    local.stop()
    assert "".join(o.text for o in outs) and outs[-1].completion_tokens == 5


def _write_checkpoint(path: Path, engine: LLMEngine) -> None:
    """Save the engine's random tiny model as a Hugging Face Llama checkpoint with a BPE tokenizer.json."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    cfg = engine.model_config
    model = engine.runner.model
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    tensors = {
        "model.embed_tokens.weight": model.embed_tokens,
        "model.norm.weight": model.norm,
        "lm_head.weight": model.lm_head,
    }
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}"
        wq, wk, wv = layer.self_attn.qkv_proj.split([q, kv, kv])
        gate, up = layer.gate_up_proj.chunk(2)
        tensors |= {
            f"{p}.self_attn.q_proj.weight": wq,
            f"{p}.self_attn.k_proj.weight": wk,
            f"{p}.self_attn.v_proj.weight": wv,
            f"{p}.self_attn.o_proj.weight": layer.self_attn.o_proj,
            f"{p}.mlp.gate_proj.weight": gate,
            f"{p}.mlp.up_proj.weight": up,
            f"{p}.mlp.down_proj.weight": layer.down_proj,
            f"{p}.input_layernorm.weight": layer.input_layernorm,
            f"{p}.post_attention_layernorm.weight": layer.post_attention_layernorm,
        }
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "vocab_size": cfg.vocab_size,
                "hidden_size": cfg.hidden_size,
                "num_hidden_layers": cfg.num_layers,
                "num_attention_heads": cfg.num_heads,
                "num_key_value_heads": cfg.num_kv_heads,
                "intermediate_size": cfg.intermediate_size,
                "max_position_embeddings": 512,
                "rope_theta": cfg.rope_theta,
                "rms_norm_eps": cfg.norm_eps,
                "bos_token_id": 0,
                "eos_token_id": 1,
                "tie_word_embeddings": False,
            }
        )
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        ["the quick brown fox jumps over the lazy dog"] * 20,
        trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            special_tokens=["<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}[assistant] {% endif %}",
            }
        )
    )


def test_local_hf_checkpoint_loads_the_same_weights(engine: LLMEngine, tmp_path: Path) -> None:
    _write_checkpoint(tmp_path, engine)
    loaded = LLMEngine(ServerConfig(model_path=str(tmp_path), max_model_len=256))
    assert loaded.config.model_name == tmp_path.name
    ids = [5, 9, 77, 120, 3, 200]
    torch.testing.assert_close(dense_forward(loaded.runner.model, ids), dense_forward(engine.runner.model, ids))
    out = loaded.generate(
        [loaded.tokenizer.encode("the quick fox")], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    )[0]
    assert out.completion_tokens == 6 and out.text == loaded.tokenizer.decode(out.token_ids)
    sampled = loaded.generate(
        [loaded.tokenizer.encode("the lazy dog")], SamplingParams(max_tokens=40, temperature=1.0, seed=2)
    )[0]
    assert sampled.text == loaded.tokenizer.decode(sampled.token_ids)
    text = "the quick brown fox héllo ✓ wörld jumps"
    ids = loaded.tokenizer.encode(text)
    decoder = loaded.tokenizer.incremental_decoder()
    assert "".join(decoder.decode(i) for i in ids) == loaded.tokenizer.decode(ids) == text
    prompt = loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])
    assert prompt == "[user] hi\n[assistant] "


def test_bad_checkpoints_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.json not found"):
        LLMEngine(ServerConfig(model_path=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="only Llama"):
        LLMEngine(ServerConfig(model_path=str(tmp_path)))
    with pytest.raises(ConfigError, match="unknown preset"):
        ServerConfig(preset="gpt-5")
    with pytest.raises(ConfigError, match="exceeds the model's 2048 positions"):
        build_model(ServerConfig(max_model_len=4096).model_config(), torch.float32, torch.device("cpu"), 0, None)


def test_a_failing_step_fails_its_requests_and_the_engine_carries_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    local = LLMEngine(ServerConfig(max_model_len=256))
    real_run = local.runner.run
    calls = {"n": 0}

    def flaky_run(batch):  # fault injection: the first forward pass raises
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")
        return real_run(batch)

    monkeypatch.setattr(local.runner, "run", flaky_run)
    finished: dict[str, str | None] = {}
    done = threading.Event()

    def sink(out) -> None:
        if out.finished:
            finished[out.request_id] = out.finish_reason
            done.set()

    local.start()
    try:
        local.add_request("doomed", [72, 105], SamplingParams(max_tokens=5, ignore_eos=True), sink)
        assert done.wait(30)
        assert finished == {"doomed": "error"}
        done.clear()
        local.add_request("fine", [72, 105], SamplingParams(max_tokens=5, ignore_eos=True), sink)
        assert done.wait(30)
        assert finished["fine"] == "length"
        assert local.block_manager.num_used_blocks == 0
        error_count = local.metrics.registry.get_sample_value("satscope_requests_total", {"finish_reason": "error"})
        assert error_count == 1
    finally:
        local.stop()


def test_gauges_show_the_step_as_scheduled_and_return_to_zero_when_idle() -> None:
    """A sequence that finishes in a step still held its blocks while the step computed: the KV gauge
    counts them (read after the step it would not), and reads 0 once nothing is left to step."""
    from prometheus_client import generate_latest

    eng = LLMEngine(ServerConfig(kv_blocks=16, max_model_len=256))

    def gauge(name: str) -> float:
        text = generate_latest(eng.metrics.registry).decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    eng.add_request("short", [65] * 40, SamplingParams(max_tokens=2, ignore_eos=True))  # 3 blocks, ends at step 2
    eng.add_request("long", [66] * 40, SamplingParams(max_tokens=30, ignore_eos=True))  # 3 blocks, then a 4th
    eng.step()
    both = eng.block_manager.num_used_blocks
    assert both == 6 and gauge("satscope_kv_cache_used_blocks") == both
    eng.step()  # "short" samples its last token and frees its 3 blocks at the end of this step
    assert eng.block_manager.num_used_blocks == 3
    assert gauge("satscope_kv_cache_used_blocks") == both  # it computed with both sequences' blocks
    assert gauge("satscope_kv_cache_usage_ratio") == both / 16 and gauge("satscope_num_requests_running") == 2
    while eng.has_unfinished:
        eng.step()
    assert gauge("satscope_kv_cache_used_blocks") == 0 and gauge("satscope_num_requests_running") == 0
