"""Faithful checkpoint loading: both rope formats, every EOS id, unsupported settings refused, every
loader failure one line naming the file and raised before the weights load, chat templates from
`chat_template.jinja` with HF's variables, and template errors a 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from satscope.server_under_test.config import ConfigError, ServerConfig
from satscope.server_under_test.engine import LLMEngine
from satscope.server_under_test.server import ServerThread
from tests.helpers import free_port
from tests.server.test_engine import _write_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt")
    _write_checkpoint(path, LLMEngine(ServerConfig(max_model_len=256)))
    return path


def _copy(src: Path, dst: Path, **config_changes: object) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    raw = json.loads((dst / "config.json").read_text()) | config_changes
    (dst / "config.json").write_text(json.dumps({k: v for k, v in raw.items() if v is not None}))
    return dst


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attention_bias": True}, "attention_bias: true is not supported"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
        ({"head_dim": 16}, "head_dim 16 is not supported"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope scaling type 'yarn' is not supported"),
        ({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}}, "'dynamic' is not supported"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "lacks 'low_freq_factor'"),
        ({"num_attention_heads": None}, "lacks 'num_attention_heads'"),
    ],
)
def test_unsupported_settings_are_refused_by_name(
    checkpoint: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    path = _copy(checkpoint, tmp_path / "c", **changes)
    with pytest.raises(ConfigError, match=message) as err:
        ServerConfig(model_path=str(path))  # refused from config.json alone, before any weights load
    assert "\n" not in str(err.value) and "config.json" in str(err.value)


def test_both_rope_formats_read_the_same(checkpoint: Path, tmp_path: Path) -> None:
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    old = _copy(checkpoint, tmp_path / "old", rope_theta=500000.0, rope_scaling=scaling)
    new = _copy(checkpoint, tmp_path / "new", rope_theta=None, rope_parameters={"rope_theta": 500000.0, **scaling})
    a, b = ServerConfig(model_path=str(old)).model_config(), ServerConfig(model_path=str(new)).model_config()
    assert a.rope_theta == b.rope_theta == 500000.0 and a.rope_scaling == b.rope_scaling == (8.0, 1.0, 4.0, 64)
    linear = _copy(
        checkpoint, tmp_path / "lin", rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}
    )
    assert ServerConfig(model_path=str(linear)).model_config().rope_linear_factor == 2.0


def test_eos_ids_from_config_list_and_generation_config(checkpoint: Path, tmp_path: Path) -> None:
    path = _copy(checkpoint, tmp_path / "c", eos_token_id=[1, 7])
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    cfg = ServerConfig(model_path=str(path)).model_config()
    assert cfg.eos_token_id == 1 and cfg.stop_token_ids == {1, 7, 9}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "config.json").write_text("{not json"), r"config\.json is not valid JSON"),
        (lambda p: (p / "tokenizer.json").unlink(), r"tokenizer\.json not found"),
        (lambda p: (p / "tokenizer.json").write_text("{}"), r"tokenizer\.json is not a valid tokenizer\.json"),
        (lambda p: (p / "tokenizer_config.json").write_text("[1"), r"tokenizer_config\.json is not valid JSON"),
        (lambda p: (p / "generation_config.json").write_text("oops"), r"generation_config\.json is not valid JSON"),
        (
            lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
            r"model\.safetensors",
        ),
    ],
)
def test_loader_failures_are_one_line_naming_the_file(
    checkpoint: Path, tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    path = _copy(checkpoint, tmp_path / "c")
    damage(path)
    with pytest.raises(ConfigError, match=message) as err:
        LLMEngine(ServerConfig(model_path=str(path)))
    assert "\n" not in str(err.value)


def test_chat_template_jinja_with_hf_variables_and_errors_as_400(checkpoint: Path, tmp_path: Path) -> None:
    path = _copy(checkpoint, tmp_path / "c")
    (path / "chat_template.jinja").write_text(
        "{{ bos_token }}{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('start with a user turn') }}"
        "{% endif %}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    cfg = json.loads((path / "tokenizer_config.json").read_text()) | {"eos_token": {"content": "</s>"}}
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    engine = LLMEngine(ServerConfig(model_path=str(path), max_model_len=256))
    messages = [{"role": "user", "content": "the fox"}]
    assert engine.tokenizer.apply_chat_template(messages) == "<s><user>the fox</s><assistant>"
    ids = engine.tokenizer.chat_token_ids(messages)
    assert ids.count(engine.tokenizer.bos_token_id) == 1 and ids[0] == engine.tokenizer.bos_token_id
    with ServerThread(
        ServerConfig(model_path=str(path), max_model_len=256, port=free_port(), log_level="warning")
    ) as s:
        body = {"model": path.name, "max_tokens": 2, "messages": [{"role": "assistant", "content": "hi"}]}
        r = httpx.post(f"{s.url}/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 400 and "start with a user turn" in r.json()["error"]["message"]
        body["messages"] = messages
        ok = httpx.post(f"{s.url}/v1/chat/completions", json=body, timeout=30).json()
        assert ok["usage"]["prompt_tokens"] == len(ids)
