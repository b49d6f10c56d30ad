"""Read a Hugging Face Llama checkpoint's `config.json` (and `generation_config.json`) faithfully.

Both config formats load: transformers 5.x writes `rope_parameters`, older versions `rope_theta`
and `rope_scaling`. RoPE scaling of type llama3 and linear is supported; any other is refused by
name, as is every setting the model code does not implement (biases, non-SiLU activations, an
explicit head_dim other than hidden_size / num_heads), so a checkpoint never loads into a model
that is silently different. Every failure is a one-line ConfigError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from satscope.server_under_test.config import ConfigError, ModelConfig

__all__ = ["load_hf_model_config", "read_json"]


def read_json(file: Path) -> dict[str, Any]:
    try:
        raw = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file} is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} is not a JSON object")
    return raw


def _ids(value: object) -> list[int]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _rope(raw: dict[str, Any], file: Path) -> tuple[float, tuple[float, float, float, int] | None, float]:
    """(theta, llama3 scaling or None, linear factor) from either format."""
    params = raw.get("rope_parameters")
    if isinstance(params, dict):  # transformers 5.x: theta and scaling in one object
        scaling: dict[str, Any] | None = params
        theta = params.get("rope_theta", raw.get("rope_theta", 10000.0))
    else:
        scaling = raw.get("rope_scaling") or None
        theta = raw.get("rope_theta", 10000.0)
    if scaling is None:
        return float(theta), None, 1.0
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    try:
        if kind == "default":
            return float(theta), None, 1.0
        if kind == "linear":
            return float(theta), None, float(scaling["factor"])
        if kind == "llama3":
            llama3 = (
                float(scaling["factor"]),
                float(scaling["low_freq_factor"]),
                float(scaling["high_freq_factor"]),
                int(scaling["original_max_position_embeddings"]),
            )
            return float(theta), llama3, 1.0
    except KeyError as exc:
        raise ConfigError(f"{file}: rope scaling {kind!r} lacks {exc.args[0]!r}") from None
    raise ConfigError(f"{file}: rope scaling type {kind!r} is not supported (only default, linear and llama3 are)")


def _refuse_unsupported(raw: dict[str, Any], file: Path) -> None:
    for flag in ("attention_bias", "mlp_bias"):
        if raw.get(flag):
            raise ConfigError(f"{file}: {flag}: true is not supported (the Llama model here has no biases)")
    act = raw.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ConfigError(f"{file}: hidden_act {act!r} is not supported (only silu)")
    head_dim = raw.get("head_dim")
    if head_dim is not None and head_dim != raw["hidden_size"] // raw["num_attention_heads"]:
        raise ConfigError(
            f"{file}: head_dim {head_dim} is not supported (only hidden_size / num_attention_heads = "
            f"{raw['hidden_size'] // raw['num_attention_heads']})"
        )


def load_hf_model_config(path: Path) -> ModelConfig:
    """Read a Hugging Face Llama `config.json` into a ModelConfig."""
    file = path / "config.json"
    if not file.is_file():
        raise ConfigError(f"{file} not found: --model must be a local Hugging Face Llama checkpoint")
    raw = read_json(file)
    if raw.get("model_type") not in (None, "llama"):
        raise ConfigError(f"{file}: model_type {raw.get('model_type')!r} is not supported: only Llama checkpoints load")
    try:
        _refuse_unsupported(raw, file)
        theta, llama3, linear = _rope(raw, file)
        eos = _ids(raw.get("eos_token_id"))
        gen_file = path / "generation_config.json"
        if gen_file.is_file():
            eos += [i for i in _ids(read_json(gen_file).get("eos_token_id")) if i not in eos]
        eos = eos or [2]
        heads = raw["num_attention_heads"]
        return ModelConfig(
            name=path.name,
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            num_layers=raw["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=raw.get("num_key_value_heads") or heads,
            intermediate_size=raw["intermediate_size"],
            max_position=raw.get("max_position_embeddings", 2048),
            rope_theta=theta,
            norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
            tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
            bos_token_id=raw.get("bos_token_id", 1) or 0,
            eos_token_id=eos[0],
            eos_token_ids=tuple(eos),
            rope_scaling=llama3,
            rope_linear_factor=linear,
        )
    except KeyError as exc:
        raise ConfigError(f"{file} lacks {exc.args[0]!r}: is it a Llama config?") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{file}: a value has the wrong type ({exc})") from None
